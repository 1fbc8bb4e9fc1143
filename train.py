#!/usr/bin/env python3
"""Train pangu-CodeCLM through the mindformers Trainer (`pangu-codeclm train` with the mindformers script's name).

python train.py --config configs/pangu_codeclm_tiny_cpu.yaml [--device_target CPU|Ascend] [--resume] [--output_dir DIR]
"""
import sys

from pangu_codeclm.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("train", sys.argv[1:], prog="train.py"))
