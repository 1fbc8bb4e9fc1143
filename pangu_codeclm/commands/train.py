"""`pangu-codeclm train` / `python train.py`: mindformers-style flags over `train.session.run_training`."""
import logging


def add_arguments(parser):
    from ..train.context import DEVICE_TARGETS
    parser.add_argument("--config", required=True, help="run yaml, e.g. configs/pangu_codeclm_tiny_cpu.yaml")
    parser.add_argument("--device_target", choices=DEVICE_TARGETS, default=None,
                        help="override context.device_target")
    parser.add_argument("--run_mode", choices=("train",), default="train", help="only 'train' (evaluation: eval.py)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest intact checkpoint in OUTPUT_DIR/checkpoint/rank_<r>")
    parser.add_argument("--output_dir", default=None, help="override output_dir (checkpoints, metrics.csv, PNG)")
    parser.add_argument("--train_dataset_dir", default=None, help="override train_dataset.dataset_files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a yaml key (dotted path, YAML value), e.g. --set pangu.train_steps=20")
    return parser


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import os
    import sys

    from ..train.context import parse_overrides
    from ..train.session import run_training
    # which Python runs this (msrun workers must run the launcher's own; the msrun test checks this line)
    logging.getLogger(__name__).info("interpreter %s", sys.executable)
    try:
        overrides = parse_overrides(args.overrides)
        if args.train_dataset_dir:
            overrides["train_dataset.dataset_files"] = args.train_dataset_dir
        result = run_training(args.config, device_target=args.device_target, resume=args.resume,
                              output_dir=args.output_dir, overrides=overrides)
    except (FileNotFoundError, ValueError) as exc:  # bad config/data/checkpoint: say what, not where in the stack
        if os.environ.get("PANGU_CODECLM_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = result["metrics"]
    if rows:
        logging.getLogger(__name__).info("finished at step %d, last loss %.6f; metrics in %s/metrics.csv",
                                         result["final_step"], rows[-1]["loss"], result["output_dir"])
    return 0
