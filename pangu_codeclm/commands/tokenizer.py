"""`pangu-codeclm tokenizer train`: a SentencePiece tokenizer with the PanGu recipe, saved with `save_pretrained`."""
import logging
import time

from ..separation import SEPARATIONS
from ..tokenization.registry import DEFAULT_KIND, KINDS


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a SentencePiece tokenizer (PanGu recipe) on a records file")
    train.add_argument("--records", required=True, help="records file (.jsonl, .jsonl.gz or .parquet)")
    train.add_argument("--vocab-size", type=int, required=True, help="SentencePiece pieces (specials come after)")
    train.add_argument("--out", required=True, help="output directory (save_pretrained layout)")
    train.add_argument("--separation", choices=SEPARATIONS, default="none")
    train.add_argument("--separate-tokens-file", default=None,
                       help="partial separation token list, one per line (default: derived from Python)")
    train.add_argument("--skip-bad", action="store_true", help="skip malformed records instead of stopping")
    train.add_argument("--kind", choices=sorted(KINDS), default=DEFAULT_KIND,
                       help=f"tokenizer kind (default {DEFAULT_KIND}; jieba: PanGu-Alpha's jieba + SentencePiece)")


def run(args):
    import sys

    from ..data.tokenizer_training import train_tokenizer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        tok = train_tokenizer(args.records, args.vocab_size, args.out, args.separation, args.separate_tokens_file,
                              args.skip_bad, kind=args.kind)
    except (ValueError, FileNotFoundError) as exc:  # RecordError and TokenizerError are ValueErrors
        print(f"pangu-codeclm tokenizer train: error: {exc}", file=sys.stderr)
        return 2
    print(f"tokenizer saved to {args.out}: {args.vocab_size} pieces, separation {tok.separation}, vocab size "
          f"{tok.vocab_size}, {len(tok.separation_map)} mapped tokens ({time.perf_counter() - start:.1f} s)")
    return 0
