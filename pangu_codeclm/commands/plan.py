"""`pangu-codeclm plan --config YAML|PRESET --devices N`: memory and communication plan (see `train/plan.py`);
`--lr-out FILE.json --train-steps N` writes the LR of each optimizer step 0..N of the config's schedule."""
import sys


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="run yaml, or a preset: 300m, 2.6b, 13b")
    parser.add_argument("--devices", type=int, default=None, help="number of devices (needed for the memory plan)")
    parser.add_argument("--device-memory-gb", type=float, default=32.0, help="memory per device (Ascend 910: 32)")
    parser.add_argument("--layout", default=None, metavar="DP,MP,PP",
                        help="override the config's parallel layout (default for presets: DP=devices)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per data-parallel rank per step")
    parser.add_argument("--micro-batch-num", type=int, default=None)
    parser.add_argument("--recompute", choices=("on", "off"), default=None)
    parser.add_argument("--optimizer-shard", choices=("on", "off"), default=None)
    parser.add_argument("--train-steps", type=int, default=None, help="optimizer steps of the run (for --lr-out)")
    parser.add_argument("--lr-out", default=None, metavar="FILE.json",
                        help="write the LR the optimizer uses at steps 0..N (N = --train-steps) as a JSON list")


def _switch(value):
    return None if value is None else value == "on"


def run(args):
    from ..config import ConfigError
    from ..train.plan import configure, format_plan, plan, write_lr_list
    if args.devices is None and not args.lr_out:
        print("error: --devices is required (unless only --lr-out is asked for)", file=sys.stderr)
        return 2
    if args.lr_out:
        try:
            values = write_lr_list(args.config, args.train_steps, args.lr_out)
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(values)} learning rates (steps 0..{args.train_steps}) to {args.lr_out}")
        if args.devices is None:
            return 0
    try:
        cfg, batch, name = configure(args.config, args.devices, layout=args.layout, batch_size=args.batch_size,
                                     micro_batch_num=args.micro_batch_num, recompute=_switch(args.recompute),
                                     optimizer_shard=_switch(args.optimizer_shard))
        result = plan(cfg, args.devices, batch, args.device_memory_gb)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_plan(result, name))
    return 0 if result["fits"] else 1
