"""`pangu-codeclm mine [SRC ...] --out pairs.jsonl`: (docstring, code) pairs from Python source trees."""
import logging
import os
import sys


def add_arguments(parser):
    parser.add_argument("sources", nargs="*", metavar="SRC",
                        help="files or directories to mine (default: this Python's stdlib and site-packages)")
    parser.add_argument("--out", required=True, help="output records: .jsonl, .jsonl.gz or .parquet")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)),
                        help="processes (default: CPU count, at most 8)")
    parser.add_argument("--mbpp-path", default=None, help="mbpp.jsonl for decontamination (default: evaluation cache)")
    parser.add_argument("--limit-files", type=int, default=None, help="mine at most N files (smoke runs)")
    parser.add_argument("--no-decontaminate", action="store_true", help="keep pairs that match HumanEval/MBPP")
    parser.add_argument("--summary", default=None, help="also write the summary as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    import json

    from ..io_utils import atomic_write_json

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    from ..data.mine import format_summary, mine
    from ..data.records import RecordError

    try:
        summary = mine(args.sources, args.out, workers=args.workers, mbpp_path=args.mbpp_path,
                       limit_files=args.limit_files, decontaminate=not args.no_decontaminate,
                       progress=not args.quiet)
    except (FileNotFoundError, RecordError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    if args.summary:
        atomic_write_json(args.summary, summary)
    elif args.quiet:
        print(json.dumps(summary))
    return 0
