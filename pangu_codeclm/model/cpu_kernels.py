"""Fused CPU inference kernels (exact bias + GELU, LayerNorm, a prefill's and a decode step's attention with their
KV-cache writes, a matmul over weights held in strip order, alone or with a residual sum or GELU after it, the tied
head's few-row x·Wᵀ) as MindSpore AOT `ops.Custom` ops.

MindSpore 2.9's CPU backend runs the exact GELU as five elementwise kernels (Erf on one thread) and LayerNorm on one
thread: in a 150-token 300m prefill they took ~0.25 s of ~1.3 s (benchmarks/profile_300m.py). A decode step's
attention copied the attended window out of each cache and ran five kernels over it, and with the head split/merge
and the cache writes a layer's attention was a dozen kernels, each with MindSpore's per-kernel launch cost.
`cpu_kernels.cc` does each in one pass. MindSpore's and torch's few-row matmuls repack the weight on every call, so
a decode step streams its weights at a fraction of the memory bandwidth: `StripMatMul` (AVX-512 or AVX2) reads a
weight stored as column strips (`to_strips`, in place of the [K, N] order while a decoder uses it:
model/layers.Conv1D.set_strip_layout) and prefetches the next strip while it computes; `RowDotMatMul` reads the
embedding table in its own row order for the head. The multithreaded kernels share one persistent pool of helper
threads. `cpu_kernels.cc` is compiled with the host's C++ compiler (`CXX`, default g++) for this CPU
(`-march=native`) on first use, into a cache directory keyed by the source, the flags, the compiler and the CPU
(`PANGU_CODECLM_KERNEL_DIR`, default ~/.cache/pangu_codeclm/kernels), written to a temporary file and renamed. The
vector kernels (the products, attention in registers) use AVX-512 where the CPU has it, else AVX2 with FMA;
`PANGU_CODECLM_KERNEL_ISA=avx2` or `scalar` builds them for less than the CPU has (tests, comparisons), and the
library says what it was built for (`FusedOps.simd_bits`).

Where there is no compiler, the device is not CPU, or `PANGU_CODECLM_CPU_KERNELS=0`, `fused_ops()` returns None and
the network runs its plain MindSpore ops (a warning says why, once). The network uses them only outside training
(model/layers.MLP, LayerNorm, the attention of a prefill and of a decode step, the strip-order products,
model/pangu's few-row logits); a gradient through the first two is computed with plain ops. Results match the plain ops to fp32 rounding (tests/test_cpu_kernels.py).
"""
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

import numpy as np

from mindspore import ops

LOG = logging.getLogger(__name__)
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_kernels.cc")
STRIP_COLUMNS = 48  # columns per strip of `to_strips` (three AVX-512 or six AVX2 vectors: the kernels' tiles)
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC", "-pthread",
         f"-DPCL_STRIP={STRIP_COLUMNS}")
ENABLE_ENV = "PANGU_CODECLM_CPU_KERNELS"
DIR_ENV = "PANGU_CODECLM_KERNEL_DIR"
ISA_ENV = "PANGU_CODECLM_KERNEL_ISA"
# what each PANGU_CODECLM_KERNEL_ISA value adds to FLAGS: the CPU's best, AVX2 at most, no vector kernels
ISA_FLAGS = {"native": (), "avx2": ("-mno-avx512f",), "scalar": ("-mno-avx512f", "-mno-avx2")}
_STATE = {}


class FusedOps:
    """The Custom ops of one built library, fp32.

    `bias_gelu(x, bias)` and `layer_norm(x, gamma, beta, eps)` (eps a [1] tensor): any leading shape (dynamic shapes
    included), their gradients in plain MindSpore ops (`_bias_gelu_grad`, `_layer_norm_grad`).
    `decode_attention(q [B,Cq], kv [B,Ckv], k_cache [B*H,L,D], v_cache, slots int32 [S], onehot [B*H,S,1],
    may [B*H,1,W], bias [B*H,1,W], scale [H])` -> [B, H*D]: a decode step's attention from the projections (q: the
    first H*D columns of q, k|v: the last 2*H*D of kv), its new k/v added into the cache Parameters in place as
    model/layers.KVCacheWrite.add does, the first W slots read in place, the heads merged.
    `prefill_attention(q [B*T,Cq], kv [B*T,Ckv], k_cache, v_cache, rows int32 [B*H], may [B,Hm,T,T], bias, scale)`
    -> [B*T, H*D]: a prefill's attention, cache rows `rows` reset in place to the new k/v (then zeros) as
    KVCacheWrite.reset does, Hm = 1 or H. `scale` holds the score scale once per head (its length is H: the output's
    width where the batch is a dynamic dimension).
    `strip_matmul(x [M,K], w [K,N] in strip order, bias [N])` = x @ w + bias, `strip_matmul_add(x, w, bias,
    residual [M,N])` = x @ w + bias + residual, `strip_matmul_gelu(x, w, bias)` = GELU(x @ w + bias),
    `row_dot_matmul(x [M,K], w [N,K])` = x @ w^T (w in its own row order: the tied head): None where the library
    has no vector kernels (`simd_bits` 0: a CPU without AVX2 and FMA, or PANGU_CODECLM_KERNEL_ISA=scalar). All but
    the first two have no gradient (inference only)."""

    def __init__(self, library):
        from mindspore.ops import CustomRegOp, DataType

        def custom(name, inputs, bprop=None, int32=()):
            reg = CustomRegOp()
            for i, arg in enumerate(inputs):
                reg = reg.input(i, arg)
            formats = [DataType.I32_Default if arg in int32 else DataType.F32_Default for arg in inputs]
            info = reg.output(0, "y").dtype_format(*formats, DataType.F32_Default).target("CPU")
            return ops.Custom(f"{library}:{name}", out_shape=None, out_dtype=None, func_type="aot",
                              bprop=bprop, reg_info=info.get_op_info())

        self.library = library
        self.simd_bits = int(ctypes.CDLL(library).PclSimdBits())  # 512, 256 or 0: what the build's -march allowed
        self.bias_gelu = custom("BiasGelu", ("x", "bias"), _bias_gelu_grad)
        self.layer_norm = custom("LayerNormRows", ("x", "gamma", "beta", "eps"), _layer_norm_grad)
        self.decode_attention = custom("DecodeAttention", ("q", "kv", "k", "v", "slots", "onehot", "may", "bias",
                                                           "scale"), int32=("slots",))
        self.prefill_attention = custom("PrefillAttention", ("q", "kv", "k", "v", "rows", "may", "bias", "scale"),
                                        int32=("rows",))
        # the products are vector code: None without it (the weights keep their [in, out] order)
        vector = self.simd_bits > 0
        self.strip_matmul = custom("StripMatMul", ("x", "w", "bias")) if vector else None
        self.strip_matmul_add = custom("StripMatMulAdd", ("x", "w", "bias", "residual")) if vector else None
        self.strip_matmul_gelu = custom("StripMatMulGelu", ("x", "w", "bias")) if vector else None
        self.row_dot_matmul = custom("RowDotMatMul", ("x", "w")) if vector else None


def _strip_bounds(columns):
    """(first column, width) of each strip of a weight with `columns` columns."""
    return [(c, min(STRIP_COLUMNS, columns - c)) for c in range(0, columns, STRIP_COLUMNS)]


def to_strips(weight):
    """A [K, N] array's values in strip order (what StripMatMul reads), as a new [K, N] array: strip s (columns
    s*48 .. s*48+w) is the contiguous [K, w] block at offset s*48*K."""
    rows, columns = weight.shape
    return np.concatenate([weight[:, first:first + width].reshape(-1)
                           for first, width in _strip_bounds(columns)]).reshape(rows, columns)


def from_strips(weight):
    """The inverse of `to_strips`: the [K, N] array whose strip order `weight` holds."""
    rows, columns = weight.shape
    flat = weight.reshape(-1)
    return np.concatenate([flat[first * rows:(first + width) * rows].reshape(rows, width)
                           for first, width in _strip_bounds(columns)], axis=1)


def _leading_sum(t):
    """Sum over every axis but the last."""
    return ops.reshape(t, (-1, t.shape[-1])).sum(0)


def _bias_gelu_grad(x, bias, out, dout):
    """d GELU(v)/dv = Phi(v) + v phi(v), v = x + bias."""
    v = x + bias
    slope = 0.5 * (1.0 + ops.erf(v * 0.7071067811865476)) + v * ops.exp(-0.5 * v * v) * 0.3989422804014327
    dx = dout * slope
    return dx, _leading_sum(dx)


def _layer_norm_grad(x, gamma, beta, eps, out, dout):
    """Gradients of (x - mean) * rstd * gamma + beta over the last axis."""
    mean = x.mean(-1, keep_dims=True)
    centred = x - mean
    rstd = ops.rsqrt((centred * centred).mean(-1, keep_dims=True) + eps)
    normed = centred * rstd
    g = dout * gamma
    dx = rstd * (g - g.mean(-1, keep_dims=True) - normed * (g * normed).mean(-1, keep_dims=True))
    return dx, _leading_sum(dout * normed), _leading_sum(dout), ops.zeros_like(eps)


def _cpu_signature():
    """The CPU's model and feature flags (the library is built for this CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return ""


def build_flags():
    """The compiler flags: FLAGS and those of PANGU_CODECLM_KERNEL_ISA (default native). Raises RuntimeError for a
    value it does not know."""
    isa = os.environ.get(ISA_ENV, "native").strip().lower() or "native"
    if isa not in ISA_FLAGS:
        raise RuntimeError(f"{ISA_ENV}={os.environ[ISA_ENV]!r}: expected one of {', '.join(ISA_FLAGS)}")
    return FLAGS + ISA_FLAGS[isa]


def _compiler_version(compiler):
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def kernel_dir():
    """Where built libraries are kept."""
    return os.environ.get(DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "pangu_codeclm", "kernels")


def build(directory=None, compiler=None):
    """Path of the library built from SOURCE for this CPU and compiler (built now unless already there). Raises
    RuntimeError naming the compiler and its output when it cannot be built."""
    compiler = compiler or os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX)")
    flags = build_flags()
    with open(SOURCE, "rb") as f:
        source = f.read()
    key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), _compiler_version(compiler).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    directory = directory or kernel_dir()
    target = os.path.join(directory, f"cpu_kernels_{key}.so")
    if os.path.exists(target):
        return target
    os.makedirs(directory, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".cpu_kernels_", suffix=".so", dir=directory)
    os.close(fd)
    try:
        result = subprocess.run([compiler, *flags, "-o", partial, SOURCE], capture_output=True, text=True,
                                timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} could not build {SOURCE} (exit {result.returncode}):\n"
                               f"{result.stderr.strip()[-2000:]}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


def _allow(library):
    """MindSpore calls AOT libraries only from the directories in MS_CUSTOM_AOT_WHITE_LIST when it is set."""
    allowed = [p for p in os.environ.get("MS_CUSTOM_AOT_WHITE_LIST", "").split(":") if p]
    directory = os.path.dirname(library)
    if allowed and directory not in allowed:
        os.environ["MS_CUSTOM_AOT_WHITE_LIST"] = ":".join(allowed + [directory])


def fused_ops():
    """The fused ops for this process (built once), or None where they cannot be used (see the module docstring)."""
    if "ops" in _STATE:
        return _STATE["ops"]
    import mindspore as ms
    reason = None
    if os.environ.get(ENABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        reason = f"{ENABLE_ENV}={os.environ[ENABLE_ENV]}"
    elif ms.get_context("device_target") != "CPU":
        reason = f"device {ms.get_context('device_target')}"
    ops = None
    if reason is None:
        try:
            library = build()
            _allow(library)
            ops = FusedOps(library)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            LOG.warning("fused CPU kernels unavailable, using MindSpore's ops: %s", exc)
    else:
        LOG.debug("fused CPU kernels off: %s", reason)
    _STATE["ops"] = ops
    return ops


def reset():
    """Forget the ops of this process (the next `fused_ops()` decides again: tests)."""
    _STATE.clear()
