"""Checkpoint directories: the released HF PyTorch layout and this project's MindSpore layout (read, check, write).

HF layout (what `huawei-noah/pangu-CodeCLM-*` look like, loadable by the reference PyTorch code):
    config.json                 GPT-2 style config (`PanguCodeCLMConfig.to_hf_dict`)
    model.safetensors           parameters under the HF keys (and/or pytorch_model.bin, fp16 in the releases)
    vocab.model                 SentencePiece model: the tokenizer is loaded when it is there
    added_tokens.json, special_tokens_map.json, tokenizer_config.json
                                the released tokenizer files (written by `PanguTokenizer.save_pretrained`); without
                                them the tokenizer is rebuilt from vocab.model, the separation and the map
    replicated_tokens_map.pkl   separation map {text id: code id} (absent or empty: no separation)

MindSpore layout (this project):
    pangu_codeclm.json          {"format": "pangu-codeclm-mindspore", "version": 1, "config": config.to_model_dict()}
    model.safetensors           MindSpore checkpoint written by `mindspore.save_checkpoint(..., format="safetensors")`,
                                parameter names = the HF keys
    tokenizer files + replicated_tokens_map.pkl as above

Buffers of the released checkpoints (`*.attn.bias`, `*.attn.masked_bias`, `code_tokens_mask`, `doc_tokens_mask`, and
`lm_head.weight` when equal to `wte`) are dropped on import and never exported: the masks are rebuilt from the map.
Every expected key must be present with its exact shape; unexpected keys are an error. Nothing is returned (so nothing
is loaded) unless every check passes. Writers build the whole directory in a temp dir and rename it into place.
"""
import contextlib
import logging
import os
import re

import numpy as np

from ..config import ConfigError, PanguCodeCLMConfig
from ..io_utils import atomic_directory, atomic_write_json, load_int_map_pickle, load_json, save_int_map_pickle
from ..separation import modality_vocab_masks

logger = logging.getLogger(__name__)

HF_CONFIG = "config.json"
MS_CONFIG = "pangu_codeclm.json"
MS_FORMAT = "pangu-codeclm-mindspore"
SAFETENSORS = "model.safetensors"
TORCH_BIN = "pytorch_model.bin"
MAP_FILE = "replicated_tokens_map.pkl"
VOCAB_FILE = "vocab.model"
TORCH_INSTALL_HINT = "pip install 'pangu-codeclm[torch]'"

_IGNORED = re.compile(r"(^|\.)attn\.(bias|masked_bias)$|^(code_tokens_mask|doc_tokens_mask)$")
_NP_DTYPES = {"float32": np.float32, "float16": np.float16}


def is_ignored_buffer(name):
    """True for the released checkpoints' buffers that are rebuilt, never loaded (attention masks, vocab masks)."""
    return bool(_IGNORED.search(name))


class CheckpointError(ValueError):
    """A checkpoint directory or file that does not match what is expected; the message names the file and key."""


class Checkpoint:
    """A checked checkpoint: config, numpy weights under the HF keys, separation map, tokenizer dir (or None)."""

    def __init__(self, config, weights, separation_map, tokenizer_dir, layout, path):
        self.config, self.weights, self.separation_map = config, weights, separation_map
        self.tokenizer_dir, self.layout, self.path = tokenizer_dir, layout, path

    def load_tokenizer(self):
        """The PanguTokenizer saved with the checkpoint (None when there is none), checked against the vocabulary."""
        if self.tokenizer_dir is None:
            return None
        from ..tokenizer import PanguTokenizer
        tokenizer = PanguTokenizer.from_pretrained(self.tokenizer_dir, separation=self.config.separation)
        check_tokenizer_vocab(tokenizer, self.config, self.tokenizer_dir)
        return tokenizer


def check_tokenizer_vocab(tokenizer, config, source):
    """CheckpointError naming `source` unless the tokenizer has exactly the model's `vocab_size` ids."""
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{source}: the tokenizer has {tokenizer.vocab_size} ids but the model has "
                              f"{config.vocab_size} embedding rows")


# ---------------------------------------------------------------------------------------------------- layout
def _block_shapes(prefix, e, ffn, top):
    shapes = {f"{prefix}.ln_1.weight": (e,), f"{prefix}.ln_1.bias": (e,),
              f"{prefix}.ln_2.weight": (e,), f"{prefix}.ln_2.bias": (e,)}
    if top:
        shapes.update({f"{prefix}.attn.q_attn.weight": (e, e), f"{prefix}.attn.q_attn.bias": (e,)})
    width = 2 * e if top else 3 * e
    shapes.update({f"{prefix}.attn.c_attn.weight": (e, width), f"{prefix}.attn.c_attn.bias": (width,),
                   f"{prefix}.attn.c_proj.weight": (e, e), f"{prefix}.attn.c_proj.bias": (e,),
                   f"{prefix}.mlp.c_fc.weight": (e, ffn), f"{prefix}.mlp.c_fc.bias": (ffn,),
                   f"{prefix}.mlp.c_proj.weight": (ffn, e), f"{prefix}.mlp.c_proj.bias": (e,)})
    return shapes


def expected_shapes(config):
    """{HF key: shape} of every parameter of a model with this config (Conv1D weights (in, out))."""
    e, ffn = config.hidden_size, config.ffn_hidden_size
    shapes = {"transformer.wte.weight": (config.vocab_size, e),
              "transformer.wpe.weight": (config.max_position_embeddings, e)}
    for i in range(config.num_layers):
        shapes.update(_block_shapes(f"transformer.h.{i}", e, ffn, top=False))
    shapes.update({"transformer.ln_f.weight": (e,), "transformer.ln_f.bias": (e,),
                   "top_query_embedding.weight": (config.max_position_embeddings, e)})
    shapes.update(_block_shapes("top_query_layer", e, ffn, top=True))
    return shapes


def check_weights(raw, config, source):
    """Drop the known buffers, check keys and shapes against `config`, cast to the config's param dtype.

    Raises CheckpointError naming `source`, the key, the expected and the found shape.
    """
    weights = {}
    for name, value in raw.items():
        if is_ignored_buffer(name):
            continue
        if name == "lm_head.weight":
            wte = raw.get("transformer.wte.weight")
            if wte is None or wte.shape != value.shape or not np.array_equal(wte, value):
                raise CheckpointError(f"{source}: 'lm_head.weight' differs from 'transformer.wte.weight'; the model "
                                      f"ties its output head to the embedding")
            continue
        weights[name] = value
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in weights]
    if missing:
        raise CheckpointError(f"{source}: missing parameter '{missing[0]}' (expected shape {expected[missing[0]]})"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    unexpected = sorted(k for k in weights if k not in expected)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected parameter '{unexpected[0]}' with shape "
                              f"{tuple(weights[unexpected[0]].shape)}"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    dtype = _NP_DTYPES.get(config.param_init_type, np.float32)
    out = {}
    for name, shape in expected.items():
        value = weights[name]
        if tuple(value.shape) != shape:
            raise CheckpointError(f"{source}: parameter '{name}' has shape {tuple(value.shape)}, expected {shape}")
        if not np.issubdtype(value.dtype, np.floating):
            raise CheckpointError(f"{source}: parameter '{name}' has dtype {value.dtype}, expected a float tensor")
        out[name] = np.ascontiguousarray(value, dtype=dtype)
    return out


def random_weights(config, seed=0, std=0.02):
    """Random numpy weights under the HF keys (LayerNorm weights around 1), for tests and demos."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_shapes(config).items():
        base = 1.0 if re.search(r"ln_(1|2|f)\.weight$", name) else 0.0
        out[name] = (base + std * rng.standard_normal(shape)).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------------- reading
def detect_layout(path):
    """'mindspore' when `pangu_codeclm.json` is there, 'hf' when `config.json` is, else CheckpointError."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: not a checkpoint directory (it does not exist or is not a directory)")
    if os.path.isfile(os.path.join(path, MS_CONFIG)):
        return "mindspore"
    if os.path.isfile(os.path.join(path, HF_CONFIG)):
        return "hf"
    raise CheckpointError(f"{path}: neither {MS_CONFIG} (MindSpore layout) nor {HF_CONFIG} (HF layout) found")


def _read_safetensors(path):
    from safetensors.numpy import load_file
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: cannot read safetensors ({type(exc).__name__}: {exc})") from None


def _import_torch(purpose, alternative=""):
    """The torch module, or CheckpointError saying that `purpose` needs PyTorch and how to install it."""
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{purpose} needs PyTorch; install it with {TORCH_INSTALL_HINT}{alternative}") from None
    return torch


def _read_torch_bin(path):
    torch = _import_torch(f"{path}: reading {TORCH_BIN}", f" (or provide {SAFETENSORS})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses arbitrary code with an UnpicklingError
        raise CheckpointError(f"{path}: cannot read as a weights-only PyTorch state dict "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {name: (t.float() if t.dtype == torch.bfloat16 else t).detach().cpu().numpy() for name, t in state.items()}


def read_weights_file(directory):
    """Raw {name: np.ndarray} from model.safetensors, else pytorch_model.bin; CheckpointError when neither."""
    st, binary = os.path.join(directory, SAFETENSORS), os.path.join(directory, TORCH_BIN)
    if os.path.isfile(st):
        return _read_safetensors(st), st
    if os.path.isfile(binary):
        return _read_torch_bin(binary), binary
    raise CheckpointError(f"{directory}: no weights found: expected {SAFETENSORS} or {TORCH_BIN}")


def check_map_against_config(mapping, config, where, map_name=MAP_FILE, absent=False):
    """CheckpointError (`where`: ...) naming the map and the config's separation unless they agree: a map exactly
    when separated, every id inside the config's vocabulary."""
    if not mapping and config.separation != "none":
        raise CheckpointError(f"{where}: the config says separation '{config.separation}' but {map_name} is "
                              f"{'missing' if absent else 'empty'}")
    if mapping and config.separation == "none":
        raise CheckpointError(f"{where}: {map_name} has {len(mapping)} separated tokens but the config says "
                              f"separation 'none'")
    try:
        modality_vocab_masks(mapping, config.vocab_size)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {map_name}: {exc}") from None


def read_separation_map(directory, config):
    """The map from replicated_tokens_map.pkl ({} when absent), checked against the config."""
    path = os.path.join(directory, MAP_FILE)
    present = os.path.isfile(path)
    mapping = load_int_map_pickle(path) if present else {}
    check_map_against_config(mapping, config, directory, absent=not present)
    return mapping


def _tokenizer_dir(directory):
    return directory if os.path.isfile(os.path.join(directory, VOCAB_FILE)) else None


def read_hf(directory):
    """Read and check an HF directory; returns a Checkpoint (weights cast to the config's param dtype)."""
    directory = os.fspath(directory)
    config_path = os.path.join(directory, HF_CONFIG)
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{directory}: missing {HF_CONFIG}")
    config = PanguCodeCLMConfig.from_hf_json(config_path)
    raw, source = read_weights_file(directory)
    weights = check_weights(raw, config, source)
    mapping = read_separation_map(directory, config)
    logger.info("read HF checkpoint %s (%d parameters, separation %s, %d mapped ids)", source, len(weights),
                config.separation, len(mapping))
    return Checkpoint(config, weights, mapping, _tokenizer_dir(directory), "hf", directory)


def _read_ms_config(config_path):
    """The config inside a `pangu_codeclm.json`; errors name the file."""
    meta = load_json(config_path, CheckpointError, what=MS_CONFIG)
    if not isinstance(meta, dict) or meta.get("format") != MS_FORMAT or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{config_path}: expected {{\"format\": \"{MS_FORMAT}\", \"config\": {{...}}}}")
    try:
        return PanguCodeCLMConfig(**meta["config"])
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None


def read_mindspore(directory):
    """Read and check this project's MindSpore layout; returns a Checkpoint."""
    directory = os.fspath(directory)
    config = _read_ms_config(os.path.join(directory, MS_CONFIG))
    path = os.path.join(directory, SAFETENSORS)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: missing {SAFETENSORS}")
    weights = check_weights(_read_safetensors(path), config, path)
    mapping = read_separation_map(directory, config)
    logger.info("read MindSpore checkpoint %s (%d parameters, separation %s)", path, len(weights), config.separation)
    return Checkpoint(config, weights, mapping, _tokenizer_dir(directory), "mindspore", directory)


def read_checkpoint(path):
    """Read either layout (detected from the files present)."""
    return read_hf(path) if detect_layout(path) == "hf" else read_mindspore(path)


def read_config(path):
    """A config from a checkpoint directory (either layout), an HF config.json or a pangu_codeclm.json."""
    path = os.fspath(path)
    if os.path.isdir(path):
        layout = detect_layout(path)
        path = os.path.join(path, HF_CONFIG if layout == "hf" else MS_CONFIG)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: config file not found")
    if os.path.basename(path) == MS_CONFIG:
        return _read_ms_config(path)
    return PanguCodeCLMConfig.from_hf_json(path)


_OPTIMIZER_STATE = re.compile(r"(^|\.)(adam_m|adam_v|moment1|moment2|moments|accum|accu_grads|exp_avg|exp_avg_sq|"
                              r"accumulation)(\.|$)")


def _training_param(names, key, source):
    if key in names:
        return key
    found = [n for n in names if n.endswith("." + key) and not _OPTIMIZER_STATE.search(n[:-len(key)])]
    if len(found) > 1:
        raise CheckpointError(f"{source}: parameter '{key}' is ambiguous: {found[:4]}")
    return found[0] if found else None


def read_training_checkpoint(path, config, aux_dir=None):
    """Weights of a MindSpore training checkpoint (`.ckpt`/`.safetensors` of the train cell: optimizer moments, step
    counters and loss scale are skipped; wrapper prefixes are resolved) with `config`; the map and tokenizer come
    from `aux_dir` (a tokenizer/checkpoint directory) when given."""
    import mindspore as ms
    path = os.fspath(path)
    if not aux_dir and config.separation != "none":  # refuse before reading a possibly large file
        raise CheckpointError(f"{path}: separation '{config.separation}' needs the separation map: pass the tokenizer "
                              f"directory holding {MAP_FILE}")
    mapping = read_separation_map(aux_dir, config) if aux_dir else {}
    fmt = "safetensors" if path.endswith(".safetensors") else "ckpt"
    try:
        params = ms.load_checkpoint(path, format=fmt)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError for corrupt files
        raise CheckpointError(f"{path}: cannot read MindSpore checkpoint ({type(exc).__name__}: {exc})") from None
    raw = {}
    for key, shape in expected_shapes(config).items():
        name = _training_param(params, key, path)
        if name is None:
            raise CheckpointError(f"{path}: missing parameter '{key}' (expected shape {shape})")
        tensor = params[name]
        if tensor.dtype == ms.bfloat16:
            tensor = tensor.astype(ms.float32)
        raw[key] = tensor.asnumpy()
    weights = check_weights(raw, config, path)
    logger.info("read training checkpoint %s (%d parameters of %d entries)", path, len(weights), len(params))
    return Checkpoint(config, weights, mapping, _tokenizer_dir(aux_dir) if aux_dir else None, "training", path)


# ---------------------------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _write_common(directory, separation_map, tokenizer):
    if separation_map:
        save_int_map_pickle(os.path.join(directory, MAP_FILE), separation_map)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


def _checked_for_writing(config, weights, separation_map, tokenizer):
    """fp32 weights after the shape checks; the tokenizer must agree with the map and the vocabulary size."""
    if tokenizer is not None:
        if dict(tokenizer.separation_map) != dict(separation_map or {}):
            raise CheckpointError(f"the tokenizer's separation map ({len(tokenizer.separation_map)} entries) differs "
                                  f"from the model's ({len(separation_map or {})} entries)")
        check_tokenizer_vocab(tokenizer, config, "tokenizer to write")
    check_map_against_config(separation_map or {}, config, "checkpoint to write", "its separation map")
    weights = {k: np.asarray(v) for k, v in weights.items()}
    return check_weights(weights, config.replace(param_init_type="float32"), "weights to write")


def write_hf(directory, config, weights, separation_map=None, tokenizer=None, write_bin=False, overwrite=False,
             bin_dtype="float32"):
    """Write the HF layout (config.json, model.safetensors fp32, optional pytorch_model.bin in `bin_dtype` (the
    releases use float16), tokenizer, map). config.json's torch_dtype is the bin's dtype when one is written (the file
    the reference's transformers reads), else float32."""
    if bin_dtype not in _NP_DTYPES:
        raise ValueError(f"bin_dtype: expected one of {sorted(_NP_DTYPES)}, got {bin_dtype!r}")
    from safetensors.numpy import save_file
    torch = _import_torch(f"writing {TORCH_BIN}") if write_bin else None
    weights = _checked_for_writing(config, weights, separation_map, tokenizer)
    with atomic_directory(directory, overwrite) as tmp:
        config.save_hf_json(os.path.join(tmp, HF_CONFIG), torch_dtype=bin_dtype if write_bin else "float32")
        save_file(weights, os.path.join(tmp, SAFETENSORS), metadata={"format": "pt"})
        if write_bin:
            torch.save({k: torch.from_numpy(v.astype(_NP_DTYPES[bin_dtype])) for k, v in weights.items()},
                       os.path.join(tmp, TORCH_BIN))
        _write_common(tmp, separation_map, tokenizer)
    logger.info("wrote HF checkpoint to %s (%d parameters%s)", directory, len(weights),
                ", + pytorch_model.bin" if write_bin else "")


def write_ms_config(path, config):
    """Write `pangu_codeclm.json` (this project's config file; training runs leave one in their output dir)."""
    atomic_write_json(path, {"format": MS_FORMAT, "version": 1, "config": config.to_model_dict()})


def write_mindspore(directory, config, weights, separation_map=None, tokenizer=None, overwrite=False):
    """Write this project's MindSpore layout (MindSpore safetensors checkpoint + pangu_codeclm.json)."""
    import mindspore as ms
    weights = _checked_for_writing(config, weights, separation_map, tokenizer)
    with atomic_directory(directory, overwrite) as tmp:
        write_ms_config(os.path.join(tmp, MS_CONFIG), config)
        params = [{"name": name, "data": ms.Tensor(value)} for name, value in weights.items()]
        ms.save_checkpoint(params, os.path.join(tmp, SAFETENSORS), format="safetensors")
        _write_common(tmp, separation_map, tokenizer)
    logger.info("wrote MindSpore checkpoint to %s (%d parameters)", directory, len(weights))


def convert(src, dst, to, write_bin=False, overwrite=False, config=None, aux_dir=None, bin_dtype="float32"):
    """Convert `src` to layout `to` ('hf' or 'mindspore') in `dst`.

    `src` is a checkpoint directory (either layout), or a MindSpore training checkpoint file, which needs `config`
    (see `read_config`) and, for separated models or to carry the tokenizer, `aux_dir` (defaults to `config` when
    that is a directory).
    """
    if to not in ("hf", "mindspore"):
        raise ValueError(f"unknown layout {to!r}; expected 'hf' or 'mindspore'")
    if os.path.isfile(os.fspath(src)):
        if config is None:
            raise CheckpointError(f"{src}: a training checkpoint file needs a config (--config: a checkpoint "
                                  f"directory, config.json or {MS_CONFIG})")
        if aux_dir is None and os.path.isdir(os.fspath(config)):
            aux_dir = config
        ckpt = read_training_checkpoint(src, read_config(config), aux_dir)
    else:
        ckpt = read_checkpoint(src)
    tokenizer = ckpt.load_tokenizer()
    if to == "hf":
        write_hf(dst, ckpt.config, ckpt.weights, ckpt.separation_map, tokenizer, write_bin, overwrite, bin_dtype)
    else:
        write_mindspore(dst, ckpt.config, ckpt.weights, ckpt.separation_map, tokenizer, overwrite)
    return ckpt
