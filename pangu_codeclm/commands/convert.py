"""`pangu-codeclm convert --to FORMAT SRC DST`: convert a checkpoint between formats (HF layout, this project's
MindSpore layout, model-zoo PanGu-Alpha .ckpt; SRC may also be a training .ckpt)."""


def add_arguments(parser):
    parser.add_argument("--to", required=True,
                        help="target format: hf (config.json + model.safetensors, the released PyTorch layout), "
                             "mindspore (pangu_codeclm.json + MindSpore safetensors checkpoint) or modelzoo (a "
                             "model-zoo PanGu-Alpha .ckpt file)")
    parser.add_argument("src", help="source, its format detected: a checkpoint directory (HF or MindSpore layout), a "
                                    "model-zoo PanGu-Alpha .ckpt, or a MindSpore training checkpoint file (.ckpt / "
                                    ".safetensors; needs --config)")
    parser.add_argument("dst", help="directory (or, with --to modelzoo, .ckpt file) to create (written to a temp "
                                    "path, then renamed into place)")
    parser.add_argument("--bin", action="store_true", help="with --to hf, also write pytorch_model.bin (needs torch)")
    parser.add_argument("--bin-dtype", default=None, choices=("float32", "float16"),
                        help="with --to hf --bin: dtype of pytorch_model.bin (the released checkpoints use float16; "
                             "default float32)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--config", default=None,
                        help="for a training checkpoint file: a checkpoint directory, config.json or "
                             "pangu_codeclm.json")
    parser.add_argument("--tokenizer", default=None,
                        help="for a training or model-zoo checkpoint file: directory with the tokenizer files and "
                             "replicated_tokens_map.pkl (default: --config when it is a directory; for a model-zoo "
                             "file, its own directory when it holds a tokenizer)")
    parser.add_argument("--num-heads", type=int, default=None,
                        help="for a model-zoo file that is no known preset: its number of attention heads")
    parser.add_argument("--activation", default=None, choices=("gelu", "fast_gelu", "gelu_tanh"),
                        help="for a model-zoo file: its network's activation (default: that of its name variant)")
    parser.add_argument("--variant", default=None, choices=("mindformers", "legacy"),
                        help="with --to modelzoo: parameter names of the mindformers-era network "
                             "(backbone.embedding.word_embedding.*, default) or the older one "
                             "(backbone.word_embedding.*)")
    parser.add_argument("--dtype", default=None, choices=("float32", "float16"),
                        help="with --to modelzoo: dtype of the tensors written (default float32)")


def run(args):
    import logging
    import sys

    from ..convert.convert import convert

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bin and args.to != "hf":
        print("error: --bin only applies to --to hf", file=sys.stderr)
        return 2
    try:
        ckpt = convert(args.src, args.dst, args.to, overwrite=args.overwrite, config=args.config,
                       aux_dir=args.tokenizer, num_heads=args.num_heads, activation=args.activation,
                       write_bin=args.bin, bin_dtype=args.bin_dtype, variant=args.variant, dtype=args.dtype)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"converted {args.src} ({ckpt.layout}, separation {ckpt.config.separation}, {len(ckpt.weights)} "
          f"parameters) -> {args.dst} ({args.to})")
    return 0
