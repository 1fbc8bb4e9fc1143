"""Tensor files read one tensor at a time (safetensors, weights-only PyTorch state dicts, in-memory dicts) and the
lazily read weights built on them, so that loading holds the weights once (in the network), not twice.

safetensors is parsed here rather than with `safetensors.safe_open`: safe_open memory-maps the whole file, and every
page a read touches stays resident (and counted) until the file is closed; `SafetensorsFile.read` reads one tensor
with `readinto` and keeps nothing. PyTorch `.bin` files are memory-mapped by torch and their pages dropped after each
tensor is copied (measured: a 300m fp16 pytorch_model.bin loads at ~1.6x the fp32 weights at peak).
"""
import json
import os
from collections.abc import Mapping

import numpy as np

from .errors import CheckpointError
from .files import SAFETENSORS, TORCH_BIN, TORCH_INSTALL_HINT

NP_DTYPES = {"float32": np.float32, "float16": np.float16}


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


class ArrayTensors(TensorFile):
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


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _bf16_to_fp32(bits):
    """bfloat16 bit patterns (uint16) as float32 values."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile(TensorFile):
    """A safetensors file: the header is parsed at once, each tensor is read from disk (no mmap) when asked for."""

    def __init__(self, path):
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


def import_torch(purpose, alternative=""):
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
        torch = import_torch(f"{path}: reading {TORCH_BIN}", f" (or provide {SAFETENSORS})")
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


def read_weights_file(directory):
    """The TensorFile of model.safetensors, else of pytorch_model.bin (headers read, no tensor yet); CheckpointError
    when neither is there."""
    st, binary = os.path.join(directory, SAFETENSORS), os.path.join(directory, TORCH_BIN)
    if os.path.isfile(st):
        return SafetensorsFile(st), st
    if os.path.isfile(binary):
        return TorchBinFile(binary), binary
    raise CheckpointError(f"{directory}: no weights found: expected {SAFETENSORS} or {TORCH_BIN}")
