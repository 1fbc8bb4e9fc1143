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
from collections.abc import Mapping

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
        from ..tokenization.pangu import PanguTokenizer
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

    `raw` is a dict of arrays (checked and cast at once: a dict back) or a `TensorFile` (checked from its header, no
    tensor read: a `LazyWeights` back, each tensor read and cast when accessed).
    Raises CheckpointError naming `source`, the key, the expected and the found shape.
    """
    tensors = raw if isinstance(raw, TensorFile) else _ArrayTensors(raw)
    names = []
    for name in tensors.names:
        if is_ignored_buffer(name):
            continue
        if name == "lm_head.weight":
            _check_tied_head(tensors, source)
            continue
        names.append(name)
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in names]
    if missing:
        raise CheckpointError(f"{source}: missing parameter '{missing[0]}' (expected shape {expected[missing[0]]})"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    unexpected = sorted(k for k in names if k not in expected)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected parameter '{unexpected[0]}' with shape "
                              f"{tensors.shape(unexpected[0])}"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    for name, shape in expected.items():
        if tensors.shape(name) != shape:
            raise CheckpointError(f"{source}: parameter '{name}' has shape {tensors.shape(name)}, expected {shape}")
        if not tensors.is_float(name):
            raise CheckpointError(f"{source}: parameter '{name}' has dtype {tensors.dtype_name(name)}, expected a "
                                  f"float tensor")
    weights = LazyWeights(tensors, list(expected), _NP_DTYPES.get(config.param_init_type, np.float32))
    return weights if isinstance(raw, TensorFile) else dict(weights.items())


def _check_tied_head(tensors, source):
    if "transformer.wte.weight" in tensors.names and (
            tensors.shape("lm_head.weight") == tensors.shape("transformer.wte.weight")
            and np.array_equal(tensors.read("lm_head.weight"), tensors.read("transformer.wte.weight"))):
        return
    raise CheckpointError(f"{source}: 'lm_head.weight' differs from 'transformer.wte.weight'; the model ties its "
                          f"output head to the embedding")


class TensorFile:
    """The tensors of one weights file, read one at a time: `names`, `shape(name)`, `dtype_name(name)`,
    `is_float(name)`, `read(name, dtype=None)` (a fresh array; the file's pages are not kept)."""
    names = ()

    def shape(self, name):
        raise NotImplementedError

    def dtype_name(self, name):
        raise NotImplementedError

    def is_float(self, name):
        raise NotImplementedError

    def read(self, name, dtype=None):
        raise NotImplementedError


class _ArrayTensors(TensorFile):
    """A dict of arrays seen as a TensorFile."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.names = list(arrays)

    def shape(self, name):
        return tuple(self.arrays[name].shape)

    def dtype_name(self, name):
        return str(self.arrays[name].dtype)

    def is_float(self, name):
        return np.issubdtype(self.arrays[name].dtype, np.floating)

    def read(self, name, dtype=None):
        return np.ascontiguousarray(self.arrays[name], dtype=dtype)


class LazyWeights(Mapping):
    """Checked weights {HF key: np.ndarray of `dtype`}, each read from the file when accessed and not kept, so that
    loading holds the weights once (in the network), not twice; `dict(weights)` reads them all."""

    def __init__(self, tensors, names, dtype):
        self._tensors, self._names, self._dtype = tensors, names, dtype
        self._known = set(names)

    def __getitem__(self, name):
        if name not in self._known:
            raise KeyError(name)
        return self._tensors.read(name, self._dtype)

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def shape(self, name):
        return self._tensors.shape(name)


def weight_shape(weights, name):
    """The shape of `weights[name]` without reading it when `weights` is lazy."""
    return weights.shape(name) if isinstance(weights, LazyWeights) else tuple(weights[name].shape)


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


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _bf16_to_fp32(bits):
    """bfloat16 bit patterns (uint16) as float32 values."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile(TensorFile):
    """A safetensors file: the header is parsed at once, each tensor is read from disk (no mmap) when asked for."""

    def __init__(self, path):
        import json
        self.path = path
        size = os.path.getsize(path)
        try:
            with open(path, "rb") as f:
                length = int.from_bytes(f.read(8), "little")
                if size < 8 or length > size - 8:
                    raise ValueError(f"header length {length} does not fit in a file of {size} bytes")
                header = json.loads(f.read(length).decode("utf-8"))
            self.begin = 8 + length
            header.pop("__metadata__", None)
            self.entries = {}
            for name, entry in header.items():
                dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
                if dtype is None:
                    raise ValueError(f"tensor '{name}' has an unsupported dtype {entry['dtype']}")
                shape, (lo, hi) = tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
                if hi - lo != int(np.prod(shape)) * np.dtype(dtype).itemsize or lo < 0 or self.begin + hi > size:
                    raise ValueError(f"tensor '{name}': data_offsets {[lo, hi]} do not match its shape {list(shape)} "
                                     f"or the file size")
                self.entries[name] = (entry["dtype"], dtype, shape, lo)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot read safetensors ({type(exc).__name__}: {exc})") from None
        self.names = list(self.entries)

    def shape(self, name):
        return self.entries[name][2]

    def dtype_name(self, name):
        return self.entries[name][0]

    def is_float(self, name):
        return self.entries[name][0] in ("F64", "F32", "F16", "BF16")

    def read(self, name, dtype=None):
        kind, stored, shape, lo = self.entries[name]
        out = np.empty(shape, stored)
        with open(self.path, "rb") as f:
            f.seek(self.begin + lo)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise CheckpointError(f"{self.path}: tensor '{name}' is truncated")
        if kind == "BF16":
            out = _bf16_to_fp32(out)
        return out if dtype is None or out.dtype == dtype else out.astype(dtype)


def _read_safetensors(path):
    return SafetensorsFile(path)


def _import_torch(purpose, alternative=""):
    """The torch module, or CheckpointError saying that `purpose` needs PyTorch and how to install it."""
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{purpose} needs PyTorch; install it with {TORCH_INSTALL_HINT}{alternative}") from None
    return torch


class TorchBinFile(TensorFile):
    """A weights-only PyTorch state dict, memory-mapped: each tensor is copied (and cast) when asked for, and the
    file pages it was read from are then dropped from this process (Linux: madvise on the private file mapping)."""

    def __init__(self, path):
        torch = _import_torch(f"{path}: reading {TORCH_BIN}", f" (or provide {SAFETENSORS})")
        self.path, self.torch = path, torch
        self.state, self.mapped = self._load(path, torch), _file_mappings(path)
        if not isinstance(self.state, dict) or not all(isinstance(v, torch.Tensor) for v in self.state.values()):
            raise CheckpointError(f"{path}: expected a state dict of tensors")
        self.names = list(self.state)

    @staticmethod
    def _load(path, torch):
        try:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # a legacy (non-zip) torch.save file cannot be memory-mapped
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses arbitrary code with an UnpicklingError
            raise CheckpointError(f"{path}: cannot read as a weights-only PyTorch state dict "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None

    def shape(self, name):
        return tuple(self.state[name].shape)

    def dtype_name(self, name):
        return str(self.state[name].dtype).replace("torch.", "")

    def is_float(self, name):
        return self.state[name].is_floating_point()

    def read(self, name, dtype=None):
        tensor = self.state[name]
        value = tensor.float() if tensor.dtype == self.torch.bfloat16 else tensor
        out = np.array(value.detach().cpu().numpy(), dtype=dtype, copy=True)
        _drop_mapped_pages(tensor.untyped_storage(), self.mapped)
        return out


def _file_mappings(path):
    """[(start, end)] address ranges of this process's mappings of `path` (Linux /proc/self/maps; [] elsewhere)."""
    real, ranges = os.path.realpath(path), []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].strip() == real and fields[1].startswith("r") and "p" in fields[1]:
                    lo, hi = (int(x, 16) for x in fields[0].split("-"))
                    ranges.append((lo, hi))
    except OSError:
        pass
    return ranges


def _drop_mapped_pages(storage, mapped):
    """madvise(DONTNEED) the pages of `storage` when they lie in a private read mapping of the weights file (clean
    pages: read again from the file if touched again, so nothing is lost); anything else is left alone."""
    import ctypes
    import mmap
    start, size = storage.data_ptr(), storage.nbytes()
    page = mmap.PAGESIZE
    lo, hi = start // page * page, -(-(start + size) // page) * page
    if size == 0 or not any(a <= lo and hi <= b for a, b in mapped):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), 4)  # MADV_DONTNEED
    except (OSError, AttributeError):
        pass


def _read_torch_bin(path):
    return TorchBinFile(path)


def read_weights_file(directory):
    """The TensorFile of model.safetensors, else of pytorch_model.bin (headers read, no tensor yet); CheckpointError
    when neither is there."""
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
