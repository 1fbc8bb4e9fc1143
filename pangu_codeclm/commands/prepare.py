"""`pangu-codeclm prepare`: records -> objective samples -> packed rows -> MindRecord shards + meta.json."""
import logging
import os
import sys


def add_arguments(parser):
    from ..data.objectives import OBJECTIVES
    from ..data.prepare import SHUFFLE_SEED

    parser.add_argument("--records", required=True, help="input records (.jsonl, .jsonl.gz, .parquet)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (PanguTokenizer.save_pretrained)")
    parser.add_argument("--objective", required=True, choices=OBJECTIVES)
    parser.add_argument("--seq-length", type=int, default=1024)
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument("--num-shards", type=int, default=1, help="MindRecord shard files (default 1)")
    parser.add_argument("--seed", type=int, default=SHUFFLE_SEED,
                        help=f"seed of the two shuffles before packing (default {SHUFFLE_SEED}, the reference's)")
    parser.add_argument("--no-shuffle", action="store_true",
                        help="pack in file order, streaming (the default shuffle holds the tokenized corpus in memory)")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    parser.add_argument("--skip-bad", action="store_true", help="skip (and count) malformed records")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..data.prepare import format_summary, prepare
    from ..data.records import RecordError

    try:
        meta = prepare(args.records, args.tokenizer, args.objective, args.seq_length, args.out,
                       num_shards=args.num_shards, seed=args.seed, shuffle=not args.no_shuffle, workers=args.workers,
                       skip_bad=args.skip_bad, overwrite=args.overwrite, progress=not args.quiet)
    except (RecordError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(meta))
    print(f"wrote {os.path.abspath(args.out)}")
    return 0
