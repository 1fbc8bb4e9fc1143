"""The command layer: one module per `pangu-codeclm` subcommand.

Each module exposes `add_arguments(parser)` and `run(args) -> int`; it parses arguments and wires library calls, the
logic stays in the library modules. Heavy imports stay inside `run`, so `pangu-codeclm --help` stays fast.
"""
