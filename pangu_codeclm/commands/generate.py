"""`pangu-codeclm generate --model DIR --prompt TEXT [--signature 'def f(x):']`: print generated code as Python."""


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="checkpoint directory (HF or MindSpore layout, with vocab.model)")
    parser.add_argument("--prompt", required=True, help="natural-language description of the code to write")
    parser.add_argument("--signature", default="", help="start of the code, e.g. 'def f(x):' (the body is generated)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="most tokens to generate (default 128)")
    decoding = parser.add_mutually_exclusive_group()
    decoding.add_argument("--greedy", action="store_true", help="greedy decoding (the default)")
    decoding.add_argument("--temperature", type=float, default=None, help="sample at this temperature")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --temperature)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k best ids (with --temperature; 0 = all)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    parser.add_argument("--prefix-lm", choices=("auto", "on", "off"), default="auto",
                        help="bidirectional <comments>...<python> prefix (Prefix Code CLM); auto: the model's objective")
    parser.add_argument("--device_target", default="CPU", help="CPU, GPU or Ascend (default CPU)")


def run(args):
    import logging
    import sys

    import numpy as np

    from ..api import from_pretrained
    from ..evaluation.prompts import encode_prompt
    from ..infer.generate import completion_source, prefix_lm_enabled

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_new_tokens <= 0:
        print("error: --max-new-tokens must be positive", file=sys.stderr)
        return 2
    try:
        model = from_pretrained(args.model, device_target=args.device_target)
        tokenizer = model.tokenizer
    except (AttributeError, ValueError) as exc:  # CheckpointError and ConfigError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signature = args.signature.strip()
    ids, prefix_index = encode_prompt(tokenizer, {"text": args.prompt, "code_prefix": signature})  # as evaluated
    room = model.config.max_position_embeddings - len(ids)
    if room <= 0:
        print(f"error: the prompt has {len(ids)} tokens; the model takes at most "
              f"{model.config.max_position_embeddings}", file=sys.stderr)
        return 1
    sample = args.temperature is not None
    prefix = [prefix_index] if prefix_lm_enabled(args.prefix_lm, model.config) else None
    out = model.generate(np.array([ids]), np.ones((1, len(ids)), np.int64),
                         max_new_tokens=min(args.max_new_tokens, room), do_sample=sample,
                         temperature=args.temperature if sample else 1.0, top_p=args.top_p, top_k=args.top_k,
                         eos_token_id=tokenizer.eot_id, pad_token_id=tokenizer.pad_id, seed=args.seed,
                         prefix_index=prefix)
    print(completion_source(tokenizer, signature, out[0, len(ids):].tolist()))
    return 0
