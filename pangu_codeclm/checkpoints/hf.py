"""The HF layout (what `huawei-noah/pangu-CodeCLM-*` look like, loadable by the reference PyTorch code):

    config.json                 GPT-2 style config (`PanguCodeCLMConfig.to_hf_dict`)
    model.safetensors           parameters under the HF keys (and/or pytorch_model.bin, fp16 in the releases)
    vocab.model + tokenizer json files, replicated_tokens_map.pkl (the separation map; absent: no separation)

Buffers of the released checkpoints (`*.attn.bias`, `*.attn.masked_bias`, `code_tokens_mask`, `doc_tokens_mask`, and
`lm_head.weight` when equal to `wte`) are dropped on import and never exported: the masks are rebuilt from the map.
"""
import logging
import os

from ..config import PanguCodeCLMConfig
from ..io_utils import atomic_directory
from .base import Checkpoint
from .checks import checked_for_writing, check_weights, read_separation_map, tokenizer_dir, write_tokenizer_files
from .errors import CheckpointError
from .files import HF_CONFIG, SAFETENSORS, TORCH_BIN
from .registry import Format, register
from .tensors import NP_DTYPES, import_torch, read_weights_file

logger = logging.getLogger(__name__)


def detect(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, HF_CONFIG))


def read_config(path):
    return PanguCodeCLMConfig.from_hf_json(path)


def read_hf(directory):
    """Read and check an HF directory; returns a Checkpoint (weights cast to the config's param dtype, read lazily)."""
    directory = os.fspath(directory)
    config_path = os.path.join(directory, HF_CONFIG)
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{directory}: missing {HF_CONFIG}")
    config = read_config(config_path)
    raw, source = read_weights_file(directory)
    weights = check_weights(raw, config, source)
    mapping = read_separation_map(directory, config)
    logger.info("read HF checkpoint %s (%d parameters, separation %s, %d mapped ids)", source, len(weights),
                config.separation, len(mapping))
    return Checkpoint(config, weights, mapping, tokenizer_dir(directory), "hf", directory)


def write_hf(directory, config, weights, separation_map=None, tokenizer=None, write_bin=False, overwrite=False,
             bin_dtype="float32"):
    """Write the HF layout (config.json, model.safetensors fp32, optional pytorch_model.bin in `bin_dtype` (the
    releases use float16), tokenizer, map). config.json's torch_dtype is the bin's dtype when one is written (the file
    the reference's transformers reads), else float32."""
    if bin_dtype not in NP_DTYPES:
        raise ValueError(f"bin_dtype: expected one of {sorted(NP_DTYPES)}, got {bin_dtype!r}")
    from safetensors.numpy import save_file
    config.to_hf_dict()  # refuses what config.json cannot say (e.g. an activation other than exact gelu) up front
    torch = import_torch(f"writing {TORCH_BIN}") if write_bin else None
    weights = checked_for_writing(config, weights, separation_map, tokenizer)
    with atomic_directory(directory, overwrite) as tmp:
        config.save_hf_json(os.path.join(tmp, HF_CONFIG), torch_dtype=bin_dtype if write_bin else "float32")
        save_file(weights, os.path.join(tmp, SAFETENSORS), metadata={"format": "pt"})
        if write_bin:
            torch.save({k: torch.from_numpy(v.astype(NP_DTYPES[bin_dtype])) for k, v in weights.items()},
                       os.path.join(tmp, TORCH_BIN))
        write_tokenizer_files(tmp, separation_map, tokenizer)
    logger.info("wrote HF checkpoint to %s (%d parameters%s)", directory, len(weights),
                ", + pytorch_model.bin" if write_bin else "")


def _write(directory, config, weights, separation_map=None, tokenizer=None, overwrite=False, write_bin=False,
           bin_dtype="float32"):
    return write_hf(directory, config, weights, separation_map, tokenizer, write_bin, overwrite, bin_dtype)


HF = register(Format(
    name="hf", description="the released HF PyTorch layout (config.json + model.safetensors / pytorch_model.bin)",
    signature=f"{HF_CONFIG} (HF layout)", detect=detect, read=read_hf, write=_write,
    config_file=HF_CONFIG, read_config=read_config))
