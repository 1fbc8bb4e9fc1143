"""MindSpore training checkpoints: the `.ckpt` / `.safetensors` files of the train cell (`train/checkpoint.py`).

They hold no config: it comes from `config` (a config object, a checkpoint directory, config.json or
pangu_codeclm.json; a training run leaves pangu_codeclm.json in its output dir), and the map and tokenizer from
`aux_dir` (a tokenizer or checkpoint directory; defaults to `config` when that is a directory). Optimizer moments, step
counters and loss scale are skipped; wrapper prefixes (`network.`, `_backbone.`, ...) are resolved.
"""
import logging
import os

from ..families import family_for
from ..tokenization.base import SEPARATION_MAP_FILE
from .base import Checkpoint
from .checks import check_weights, read_separation_map, tokenizer_dir
from .errors import CheckpointError
from .files import MS_CONFIG
from .msfile import is_checkpoint_file, is_training_state, load_parameters
from .registry import Format, read_config, register

logger = logging.getLogger(__name__)


def _training_param(names, key, source):
    if key in names:
        return key
    found = [n for n in names if n.endswith("." + key) and not is_training_state(n[:-len(key)])]
    if len(found) > 1:
        raise CheckpointError(f"{source}: parameter '{key}' is ambiguous: {found[:4]}")
    return found[0] if found else None


def read_training_checkpoint(path, config, aux_dir=None):
    """Weights of a MindSpore training checkpoint with `config` (a config object); the map and tokenizer come from
    `aux_dir` when given."""
    path = os.fspath(path)
    if not aux_dir and config.separation != "none":  # refuse before reading a possibly large file
        raise CheckpointError(f"{path}: separation '{config.separation}' needs the separation map: pass the tokenizer "
                              f"directory holding {SEPARATION_MAP_FILE}")
    mapping = read_separation_map(aux_dir, config) if aux_dir else {}
    params = load_parameters(path)
    raw = {}
    for key, shape in family_for(config).shapes(config).items():
        name = _training_param(params, key, path)
        if name is None:
            raise CheckpointError(f"{path}: missing parameter '{key}' (expected shape {shape})")
        raw[key] = params[name]
    weights = check_weights(raw, config, path)
    logger.info("read training checkpoint %s (%d parameters of %d entries)", path, len(weights), len(params))
    return Checkpoint(config, weights, mapping, tokenizer_dir(aux_dir), "training", path)


def read(path, config=None, aux_dir=None):
    """The registry's reader: `config` may also be a path (see the module docstring)."""
    if config is None:
        raise CheckpointError(f"{path}: a training checkpoint file needs a config (--config: a checkpoint directory, "
                              f"config.json or {MS_CONFIG})")
    if isinstance(config, (str, os.PathLike)):
        if aux_dir is None and os.path.isdir(os.fspath(config)):
            aux_dir = config
        config = read_config(config)
    return read_training_checkpoint(path, config, aux_dir)


TRAINING = register(Format(
    name="training", description="a MindSpore training checkpoint file of this project's network (needs a config)",
    signature="a MindSpore checkpoint file (.ckpt / .safetensors)", detect=is_checkpoint_file, read=read))
