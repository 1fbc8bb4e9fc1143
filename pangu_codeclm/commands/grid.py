"""`pangu-codeclm grid`: the paper's experiment, objectives x separations trained and evaluated alike (see
`pangu_codeclm.grid`)."""
import os
import sys


def add_arguments(parser):
    from ..grid import LAUNCHERS, SAMPLED_N, TINY_CONFIG
    parser.add_argument("--init", required=True, help="starting checkpoint (HF or MindSpore directory, separation "
                                                      "none, with vocab.model)")
    parser.add_argument("--records", default=os.path.join("demo_out", "pairs.jsonl"),
                        help="training records (.jsonl/.parquet; default: the demo's mined pairs, %(default)s)")
    parser.add_argument("--config", default=TINY_CONFIG, help="base run yaml (default: the tiny CPU config)")
    parser.add_argument("--cells", default="all", help="'all' (the 12 cells) or OBJECTIVE:SEPARATION,... ('*' "
                                                       "for either side), e.g. code:*,prefix_code:full")
    parser.add_argument("--datasets", default=None, help="humaneval,mbpp (default: humaneval, + mbpp when a file "
                                                         "is found)")
    parser.add_argument("--mbpp-path", default=None, help="MBPP jsonl (default: ../shared/data/mbpp/mbpp.jsonl)")
    parser.add_argument("--out", default=os.path.join("runs", "grid"), help="grid directory (default %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="training steps of every cell (default: the "
                                                                "config's pangu.train_steps; -1 = rows x epochs)")
    parser.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps (default: config)")
    parser.add_argument("--seq-length", type=int, default=None, help="row length (default: the config's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="yaml override applied to every cell, e.g. --set runner_config.batch_size=4")
    parser.add_argument("--partial-tokens", default=None, help="token list for partial separation (default: the "
                                                               "released python_tokens.txt)")
    parser.add_argument("--device_target", default="CPU", help="CPU or Ascend (default CPU)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="standalone",
                        help="standalone (train.py), msrun (scripts/run_msrun_train.sh) or rank-table "
                             "(scripts/run_distribute_train.sh); each cell is one job")
    parser.add_argument("--worker-num", type=int, default=8, help="msrun / rank-table: devices per job")
    parser.add_argument("--rank-table", default=None, help="HCCL rank table for --launcher rank-table")
    parser.add_argument("--retries", type=int, default=1,
                        help="restart a failed training run N times (resuming) before reporting the cell failed")
    parser.add_argument("--prepare-workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate only the first N problems")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="generation batch (paper: 16)")
    parser.add_argument("--eval-workers", type=int, default=4, help="parallel sandboxed programs")
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="cap on generated tokens (default 1024)")
    parser.add_argument("--no-incremental", action="store_true", help="skip incremental pass@1 (macro/micro)")
    parser.add_argument("--sampled", action="store_true", help=f"also sampled pass@10/100 (n={SAMPLED_N})")
    parser.add_argument("--n-samples", type=int, default=SAMPLED_N, help="samples per task with --sampled")
    parser.add_argument("--hf", action="store_true", help="also export each cell in the HF PyTorch layout")
    parser.add_argument("--dry-run", action="store_true", help="prepare, time a calibration run, print the plan "
                                                               "(cells, steps, time, disk); train no cell")
    parser.add_argument("--calibration-steps", type=int, default=6, help="steps of the --dry-run calibration")


def run(args):
    from ..demo import StageFailed
    from ..grid import Grid, GridError
    try:
        grid = Grid(args)
        return grid.dry_run() if args.dry_run else grid.run()
    except (GridError, StageFailed, FileNotFoundError) as exc:
        print(f"[grid] error: {exc}", file=sys.stderr)
        return 2
