#!/usr/bin/env python3
"""Train pangu-CodeCLM through the mindformers Trainer.

python train.py --config configs/pangu_codeclm_tiny_cpu.yaml [--device_target CPU|Ascend] [--resume] [--output_dir DIR]
"""
import sys

from pangu_codeclm.train.launch import main

if __name__ == "__main__":
    sys.exit(main())
