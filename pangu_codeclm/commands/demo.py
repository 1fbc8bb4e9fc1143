"""`pangu-codeclm demo` (`bash scripts/demo.sh`): this machine's Python -> tokenizer -> trained tiny model -> eval ->
export, each stage resumable (`pangu_codeclm.demo` runs them, `demo_stages` defines them); `--grid`: the paper's grid
at a small budget instead."""
import os
import sys

DEFAULT_WORKDIR = "demo_out"


def add_arguments(parser):
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="where every artifact goes (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete the workdir's results and start over")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget in minutes (default: 10)")
    parser.add_argument("--vocab-size", type=int, default=4000, help="SentencePiece pieces (default: 4000)")
    parser.add_argument("--seq-length", type=int, default=256, help="training row length (default: 256)")
    parser.add_argument("--mbpp-path", default=None, help="MBPP jsonl; MBPP is evaluated only when it is present")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate only the first N problems")
    parser.add_argument("--grid", action="store_true",
                        help="run the paper's grid (4 objectives x 3 separations; pangu-codeclm grid) instead")
    parser.add_argument("--grid-steps", type=int, default=60, help="training steps per grid cell (default: 60)")
    parser.add_argument("--mine-source", action="append", default=None,
                        help="source tree to mine (repeatable; default: this Python's stdlib and site-packages)")


def run(args):
    import shutil

    from .. import demo_stages, grid
    from ..demo import Demo, StageFailed
    if args.fresh and os.path.isdir(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    run_all = grid.run_demo_grid if args.grid else demo_stages.run_all
    try:
        run_all(Demo(args))
    except StageFailed as exc:
        print(f"[demo] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
