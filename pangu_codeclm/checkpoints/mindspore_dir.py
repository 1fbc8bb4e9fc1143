"""This project's MindSpore layout:

    pangu_codeclm.json   {"format": "pangu-codeclm-mindspore", "version": 1, "config": config.to_model_dict()}
    model.safetensors    a MindSpore checkpoint (`mindspore.save_checkpoint(..., format="safetensors")`), parameter
                         names = the HF keys
    tokenizer files + replicated_tokens_map.pkl as in the HF layout

Training runs leave `pangu_codeclm.json` in their output directory (`write_ms_config`), so a training `.ckpt` can be
converted with that directory as its config.
"""
import logging
import os

from ..config import ConfigError, PanguCodeCLMConfig
from ..io_utils import atomic_directory, atomic_write_json, load_json
from .base import Checkpoint
from .checks import checked_for_writing, check_weights, read_separation_map, tokenizer_dir, write_tokenizer_files
from .errors import CheckpointError
from .files import MS_CONFIG, MS_FORMAT, SAFETENSORS
from .registry import Format, register
from .tensors import SafetensorsFile

logger = logging.getLogger(__name__)


def detect(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MS_CONFIG))


def read_ms_config(config_path):
    """The config inside a `pangu_codeclm.json`; errors name the file."""
    meta = load_json(config_path, CheckpointError, what=MS_CONFIG)
    if not isinstance(meta, dict) or meta.get("format") != MS_FORMAT or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{config_path}: expected {{\"format\": \"{MS_FORMAT}\", \"config\": {{...}}}}")
    try:
        return PanguCodeCLMConfig(**meta["config"])
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None


def write_ms_config(path, config):
    """Write `pangu_codeclm.json` (this project's config file; training runs leave one in their output dir)."""
    atomic_write_json(path, {"format": MS_FORMAT, "version": 1, "config": config.to_model_dict()})


def read_mindspore(directory):
    """Read and check this project's MindSpore layout; returns a Checkpoint."""
    directory = os.fspath(directory)
    config = read_ms_config(os.path.join(directory, MS_CONFIG))
    path = os.path.join(directory, SAFETENSORS)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: missing {SAFETENSORS}")
    weights = check_weights(SafetensorsFile(path), config, path)
    mapping = read_separation_map(directory, config)
    logger.info("read MindSpore checkpoint %s (%d parameters, separation %s)", path, len(weights), config.separation)
    return Checkpoint(config, weights, mapping, tokenizer_dir(directory), "mindspore", directory)


def write_mindspore(directory, config, weights, separation_map=None, tokenizer=None, overwrite=False):
    """Write this project's MindSpore layout (MindSpore safetensors checkpoint + pangu_codeclm.json)."""
    import mindspore as ms
    weights = checked_for_writing(config, weights, separation_map, tokenizer)
    with atomic_directory(directory, overwrite) as tmp:
        write_ms_config(os.path.join(tmp, MS_CONFIG), config)
        params = [{"name": name, "data": ms.Tensor(value)} for name, value in weights.items()]
        ms.save_checkpoint(params, os.path.join(tmp, SAFETENSORS), format="safetensors")
        write_tokenizer_files(tmp, separation_map, tokenizer)
    logger.info("wrote MindSpore checkpoint to %s (%d parameters)", directory, len(weights))


MINDSPORE = register(Format(
    name="mindspore", description="this project's layout (pangu_codeclm.json + MindSpore safetensors checkpoint)",
    signature=f"{MS_CONFIG} (MindSpore layout)", detect=detect, read=read_mindspore, write=write_mindspore,
    config_file=MS_CONFIG, read_config=read_ms_config))
