"""Checkpoint formats: one layer below `api`, `train` and `convert` (it imports only config, families, tokenization,
io_utils and separation).

One module per format registers detect / read / write (`registry`): `mindspore_dir` (this project's layout), `hf` (the
released HF PyTorch layout), `modelzoo` (model-zoo PanGu-Alpha .ckpt), `training` (this project's training .ckpt).
Shared pieces: `files` (file names, once), `tensors` (lazy tensor files), `checks`, `msfile` (MindSpore checkpoint
files), `load` (weights into a network), `base` (`Checkpoint`), `errors` (`CheckpointError`).
A new format is one module here plus its import below.
"""
from .base import Checkpoint
from .errors import CheckpointError
from .load import checkpoint_parameters, load_weights_into
from .registry import FORMATS, detect_format, read_checkpoint, read_config, write_checkpoint, writable_formats
from . import mindspore_dir, hf, modelzoo, training  # noqa: E402,F401  (registered in detection order)

__all__ = ["FORMATS", "Checkpoint", "CheckpointError", "checkpoint_parameters", "detect_format", "load_weights_into",
           "read_checkpoint", "read_config", "writable_formats", "write_checkpoint"]
