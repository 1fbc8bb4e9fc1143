"""The checkpoint formats: each registers `detect(path)`, `read(path, **options)` and (when writable)
`write(directory, config, weights, separation_map=None, tokenizer=None, overwrite=False, **options)`.

`read_checkpoint(path)` detects the format (formats are asked in registration order) and reads it;
`write_checkpoint(directory, format, ...)` writes one. Adding a format is one module calling `register(...)` plus its
import line in `pangu_codeclm/checkpoints/__init__.py`.
"""
import os
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import CheckpointError


@dataclass(frozen=True)
class Format:
    """One checkpoint format. `signature` says in a few words what `detect` looks for (used in error messages)."""
    name: str
    description: str
    signature: str
    detect: Callable
    read: Callable
    write: Optional[Callable] = None
    config_file: Optional[str] = None        # directory formats: the file holding the config
    read_config: Optional[Callable] = None   # that file's path -> config, without reading weights
    config_from_options: bool = False        # its reader builds the config, config keys being reader options


FORMATS = {}


def register(fmt):
    """Add a format; its name must be new."""
    if fmt.name in FORMATS:
        raise ValueError(f"checkpoint format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def writable_formats():
    return sorted(name for name, fmt in FORMATS.items() if fmt.write is not None)


def detect_format(path):
    """The name of the format of `path` (a directory or a checkpoint file); CheckpointError saying what was looked
    for otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: not a checkpoint directory (it does not exist or is not a directory)")
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt.name
    looked_for = " nor ".join(f.signature for f in FORMATS.values() if os.path.isdir(path) == _is_dir_format(f))
    raise CheckpointError(f"{path}: neither {looked_for} found")


def _is_dir_format(fmt):
    return fmt.config_file is not None


def get_format(name):
    if name not in FORMATS:
        raise ValueError(f"unknown checkpoint format {name!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def read_checkpoint(path, format=None, **options):
    """Read and check a checkpoint of any registered format (detected unless `format` is given); options go to that
    format's reader (e.g. `config=` for a training checkpoint, `num_heads=` for a model-zoo one)."""
    fmt = get_format(format or detect_format(path))
    return fmt.read(os.fspath(path), **options)


def write_checkpoint(directory, format, config, weights, separation_map=None, tokenizer=None, overwrite=False,
                     **options):
    """Write checked weights in `format` (built in a temp dir, renamed into place)."""
    fmt = get_format(format)
    if fmt.write is None:
        raise ValueError(f"checkpoint format {format!r} cannot be written; writable: {', '.join(writable_formats())}")
    return fmt.write(directory, config, weights, separation_map, tokenizer, overwrite=overwrite, **options)


def read_config(path):
    """A config from a checkpoint directory of a directory format or from a config file: a file named as one
    format's config file is read by it, any other JSON file as an HF config.json."""
    path = os.fspath(path)
    if os.path.isdir(path):
        fmt = get_format(detect_format(path))
        if fmt.read_config is None:
            raise CheckpointError(f"{path}: a {fmt.name} checkpoint carries no config file")
        path = os.path.join(path, fmt.config_file)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: config file not found")
    by_file = {fmt.config_file: fmt for fmt in FORMATS.values() if fmt.config_file}
    fmt = by_file.get(os.path.basename(path), FORMATS.get("hf"))
    return fmt.read_config(path)
