"""`pangu-codeclm` command line: one subcommand per pipeline step.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; only the chosen
module is imported, so `pangu-codeclm --help` stays fast.
"""
import argparse
import importlib
import sys

COMMANDS = {
    "mine": ("pangu_codeclm.data.mine", "mine (docstring, code) pairs from Python source trees"),
    "tokenizer": ("pangu_codeclm.tokenization.training", "train a SentencePiece tokenizer with the PanGu recipe"),
    "prepare": ("pangu_codeclm.data.prepare", "tokenize records, build objectives, pack into MindRecord shards"),
    "train": ("pangu_codeclm.train.launch", "train through the mindformers Trainer"),
    "plan": ("pangu_codeclm.train.plan", "memory and communication plan for a config on N devices"),
    "rank-table": ("pangu_codeclm.train.rank_table", "write an HCCL rank table for Ascend 910"),
    "generate": ("pangu_codeclm.infer.cli", "generate code from a prompt with a trained model"),
    "evaluate": ("pangu_codeclm.evaluation.cli", "HumanEval / MBPP pass@k in a sandbox"),
    "convert": ("pangu_codeclm.convert.cli", "convert checkpoints between MindSpore and the HF PyTorch layout"),
    "grid": ("pangu_codeclm.grid", "the paper's experiment: objectives x separations, trained and evaluated alike"),
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
    module_name, description = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"pangu-codeclm {name}", description=description)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
