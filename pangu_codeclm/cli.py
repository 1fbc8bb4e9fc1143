"""`pangu-codeclm` command line: one subcommand per pipeline step, dispatched to `pangu_codeclm.commands`.

Each subcommand lives in its own module (`pangu_codeclm/commands/<name>.py`) exposing `add_arguments(parser)` and
`run(args) -> int`; only the chosen module is imported, so `pangu-codeclm --help` stays fast.
"""
import argparse
import importlib
import sys

COMMANDS = {
    "mine": ("pangu_codeclm.commands.mine", "mine (docstring, code) pairs from Python source trees"),
    "tokenizer": ("pangu_codeclm.commands.tokenizer", "train a SentencePiece tokenizer with the PanGu recipe"),
    "prepare": ("pangu_codeclm.commands.prepare", "tokenize records, build objectives, pack into MindRecord shards"),
    "train": ("pangu_codeclm.commands.train", "train through the mindformers Trainer"),
    "plan": ("pangu_codeclm.commands.plan", "memory and communication plan for a config on N devices"),
    "rank-table": ("pangu_codeclm.commands.rank_table", "write an HCCL rank table for Ascend 910"),
    "generate": ("pangu_codeclm.commands.generate", "generate code from a prompt with a trained model"),
    "evaluate": ("pangu_codeclm.commands.evaluate", "HumanEval / MBPP / MBPP sanitized pass@k in a sandbox"),
    "convert": ("pangu_codeclm.commands.convert", "convert checkpoints: HF, MindSpore, model-zoo PanGu-Alpha"),
    "grid": ("pangu_codeclm.commands.grid",
             "the paper's experiment: objectives x separations, trained and evaluated alike"),
    "demo": ("pangu_codeclm.commands.demo", "the main job: this machine's Python -> a trained, evaluated tiny model"),
}


def _top_parser():
    parser = argparse.ArgumentParser(
        prog="pangu-codeclm", description="pangu-CodeCLM in MindSpore: data, training, evaluation, conversion.")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND",
                        help="; ".join(f"{name}: {desc}" for name, (_, desc) in COMMANDS.items()))
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        _top_parser().error(f"unknown command {name!r}; expected one of {', '.join(sorted(COMMANDS))}")
    return run_command(name, argv[1:])


def run_command(name, argv, prog=None):
    """Parse `argv` with command `name`'s arguments and run it; `prog` names it in usage (default `pangu-codeclm NAME`,
    `train.py` for the mindformers-style script)."""
    module_name, description = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=prog or f"pangu-codeclm {name}", description=description)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


if __name__ == "__main__":
    sys.exit(main())
