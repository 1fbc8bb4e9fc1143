"""`pangu-codeclm convert --to hf|mindspore SRC DST`: convert a checkpoint directory between the two layouts."""


def add_arguments(parser):
    parser.add_argument("--to", required=True, choices=("hf", "mindspore"),
                        help="target layout: hf (config.json + model.safetensors, the released PyTorch layout) or "
                             "mindspore (pangu_codeclm.json + MindSpore safetensors checkpoint)")
    parser.add_argument("src", help="source: a checkpoint directory (either layout, detected from its files) or a "
                                    "MindSpore training checkpoint file (.ckpt / .safetensors; needs --config)")
    parser.add_argument("dst", help="directory to create (written to a temp dir, then renamed into place)")
    parser.add_argument("--bin", action="store_true", help="with --to hf, also write pytorch_model.bin (needs torch)")
    parser.add_argument("--bin-dtype", default="float32", choices=("float32", "float16"),
                        help="dtype of pytorch_model.bin (the released checkpoints use float16)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--config", default=None,
                        help="for a training checkpoint file: a checkpoint directory, config.json or pangu_codeclm.json")
    parser.add_argument("--tokenizer", default=None,
                        help="for a training checkpoint file: directory with the tokenizer files and "
                             "replicated_tokens_map.pkl (default: --config when it is a directory)")


def run(args):
    import logging
    import sys

    from .hf import convert

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bin and args.to != "hf":
        print("error: --bin only applies to --to hf", file=sys.stderr)
        return 2
    try:
        ckpt = convert(args.src, args.dst, args.to, write_bin=args.bin, overwrite=args.overwrite, config=args.config,
                       aux_dir=args.tokenizer, bin_dtype=args.bin_dtype)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"converted {args.src} ({ckpt.layout}, separation {ckpt.config.separation}, {len(ckpt.weights)} "
          f"parameters) -> {args.dst} ({args.to})")
    return 0
