"""PanGu-Alpha building blocks in plain MindSpore ops, with HF parameter names and shapes.

Every cell keeps its parameters under the HF names (`weight`/`bias`; Conv1D weights stored (in, out)) so that a
checkpoint converts name for name. Matmuls run in the compute dtype; LayerNorm, softmax and the residual stream in fp32.
Every primitive is sharded from a `Strategies` object (model/parallel.py); strategies are ignored in standalone runs.
Outside training on CPU, MLP's bias + exact GELU, LayerNorm and a decode step's attention (its cache writes
included) run fused C++ kernels where they build (model/cpu_kernels.py), the same values to fp32 rounding; while a
decoder holds the Conv1D weights in strip order (`Conv1D.set_strip_layout`), their products run the strip kernel,
c_fc's with the GELU and each c_proj's with the block's residual sum in the same pass.

Attention masks arrive as two tensors built once per forward (model/pangu.py): `may_attend` M [B,1,Tq,Tk] (1 = may
attend) and the additive `bias` = (M-1)*1e4 + padding term ((1-m)*(-1e4) for a 2-D mask). Scores become s*M + bias,
i.e. masked scores are set to -1e4 (not -inf) and padding keys get a further -1e4. The incremental-decoding paths pass
M and the bias already broadcast over the heads [B,H,Tq,Tk]: on the CPU backend every broadcasting elementwise op keeps
about four times its output alive until its graph ends, which at 300m size cost ~1.4 GB per batch row in prefill.
"""
import math

import numpy as np
import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.ops import functional as F
from mindspore.common.initializer import Normal, initializer

from . import cpu_kernels

MASK_VALUE = 10000.0

# MindSpore 2.9's CPU MatMul runs a [*, 1024] x [1024, 3072] product at ~77 GFLOP/s at every row count from 64 up, where
# the [1024, 1024] and [1024, 2048] products run at ~200 (benchmarks/matmul_shapes.py): on CPU, from this many rows
# on, c_attn's q and k|v columns are two matmuls (below it the one product is as fast: decode steps keep it).
BLOCK_MIN_ROWS = 64

DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}


def ms_dtype(name):
    """MindSpore dtype for a config dtype name."""
    return DTYPES[name]


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with `weight`/`bias` parameters (HF names), computed in fp32."""

    def __init__(self, hidden_size, eps, strategies, param_dtype=ms.float32):
        super().__init__()
        self.weight = Parameter(initializer("ones", (hidden_size,), param_dtype), name="weight")
        self.bias = Parameter(initializer("zeros", (hidden_size,), param_dtype), name="bias")
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=float(eps))
        self.norm.shard(strategies.layernorm())
        self.cast = ops.Cast()
        fused = cpu_kernels.fused_ops()
        self.fused_norm = None if fused is None else fused.layer_norm
        self.eps = ms.Tensor([float(eps)], ms.float32)

    def construct(self, x):
        if self.fused_norm is not None and not self.training:
            return self.fused_norm(self.cast(x, ms.float32), self.cast(self.weight, ms.float32),
                                   self.cast(self.bias, ms.float32), self.eps)
        y, _, _ = self.norm(self.cast(x, ms.float32), self.cast(self.weight, ms.float32),
                            self.cast(self.bias, ms.float32))
        return y


class Conv1D(nn.Cell):
    """y = x @ weight + bias with weight stored (in, out) as in HF GPT-2; input [N, in] 2-D, output fp32."""

    def __init__(self, in_size, out_size, init_range, strategies, kind, compute_dtype=ms.float32,
                 param_dtype=ms.float32):
        super().__init__()
        self.weight = Parameter(initializer(Normal(init_range), (in_size, out_size), param_dtype), name="weight")
        self.bias = Parameter(initializer("zeros", (out_size,), param_dtype), name="bias")
        mm, add = strategies.linear(kind)
        self.matmul = ops.MatMul().shard(mm)
        self.add = ops.Add().shard(add)
        self.bias_add = ops.BiasAdd().shard(add)
        self.cast = ops.Cast()
        self.take = ops.StridedSlice().shard(((1, 1),))
        self.take_bias = ops.StridedSlice().shard(((1,),))
        self.compute_dtype = compute_dtype
        fused = cpu_kernels.fused_ops()
        self.strip_matmul = None if fused is None else fused.strip_matmul
        self.strip_matmul_add = None if fused is None else fused.strip_matmul_add
        self.strip_matmul_gelu = None if fused is None else fused.strip_matmul_gelu
        self.strips = False  # the weight's data is in strip order (graphs compiled meanwhile use strip_matmul)

    def construct(self, x):
        if self.strips:
            return self.strip_matmul(self.cast(x, ms.float32), self.weight, self.cast(self.bias, ms.float32))
        return self._project(x, self.weight, self.bias)

    def plus(self, x, residual):
        """residual + x @ weight + bias in one strip kernel (the weight in strip order)."""
        return self.strip_matmul_add(self.cast(x, ms.float32), self.weight, self.cast(self.bias, ms.float32),
                                     residual)

    def gelu(self, x):
        """Exact GELU(x @ weight + bias) in one strip kernel (the weight in strip order)."""
        return self.strip_matmul_gelu(self.cast(x, ms.float32), self.weight, self.cast(self.bias, ms.float32))

    def product(self, x):
        """x @ weight in fp32, without the bias."""
        return self.cast(self.matmul(self.cast(x, self.compute_dtype), self.cast(self.weight, self.compute_dtype)),
                         ms.float32)

    @property
    def holds_strips(self):
        """Whether the weight can be held in strip order: the strip kernel built, fp32 weight and compute."""
        return (self.strip_matmul is not None and self.weight.dtype == ms.float32
                and self.compute_dtype == ms.float32)

    def set_strip_layout(self, strips):
        """Rewrite the weight's data in strip order (True; inference only: the strip kernel has no gradient) or back
        to [in, out] (False); the values are unchanged, only their order. Graphs read `strips` when they compile:
        run a graph only while the layout is the one it compiled with (infer/generate.IncrementalDecoder does)."""
        strips = bool(strips)
        if strips == self.strips:
            return
        if strips and not self.holds_strips:
            raise RuntimeError("Conv1D: the strip layout needs the fused CPU kernels and fp32 weights")
        reorder = cpu_kernels.to_strips if strips else cpu_kernels.from_strips
        self.weight.set_data(ms.Tensor(reorder(self.weight.asnumpy())))
        self.strips = strips

    def _project(self, x, weight, bias):
        y = self.matmul(self.cast(x, self.compute_dtype), self.cast(weight, self.compute_dtype))
        if self.training:
            return self.add(self.cast(y, ms.float32), self.cast(bias, ms.float32))
        # the same sums; a broadcasting Add keeps ~4x its output alive for the whole graph on CPU (MindSpore 2.9)
        return self.bias_add(self.cast(y, ms.float32), self.cast(bias, ms.float32))

    def split_columns(self, x, first):
        """(x @ weight[:, :first] + bias[:first], x @ weight[:, first:] + bias[first:]) as two matmuls over slices
        of the one parameter (the columns of the full product; see BLOCK_MIN_ROWS)."""
        rows, cols = self.weight.shape
        head = self._project(x, self.take(self.weight, (0, 0), (rows, first), (1, 1)),
                             self.take_bias(self.bias, (0,), (first,), (1,)))
        tail = self._project(x, self.take(self.weight, (0, first), (rows, cols), (1, 1)),
                             self.take_bias(self.bias, (first,), (cols,), (1,)))
        return head, tail


class Embedding(nn.Cell):
    """A lookup table with a `weight` parameter [rows, E]; output fp32 [B, T, E]."""

    def __init__(self, rows, hidden_size, init_range, strategy, param_dtype=ms.float32):
        super().__init__()
        self.weight = Parameter(initializer(Normal(init_range), (rows, hidden_size), param_dtype), name="weight")
        self.gather = ops.Gather().shard(strategy)
        self.cast = ops.Cast()

    def construct(self, ids):
        return self.cast(self.gather(self.weight, ids, 0), ms.float32)


class Dropout(nn.Cell):
    """Dropout active only in training and only when rate > 0."""

    def __init__(self, rate, layout):
        super().__init__()
        self.rate = float(rate)
        self.dropout = ops.Dropout(keep_prob=1.0 - self.rate) if self.rate > 0 else None
        if self.dropout is not None:
            self.dropout.shard((layout,))

    def construct(self, x):
        if self.training and self.rate > 0:
            y, _ = self.dropout(x)
            return y
        return x


class MLP(nn.Cell):
    """residual + (c_fc (column parallel) -> activation -> c_proj (row parallel) -> dropout).

    `config.activation`: "gelu" exact erf GELU 0.5*h*(1 + erf(h/sqrt(2))) (the released CodeCLM), "fast_gelu"
    MindSpore's FastGeLU h*sigmoid(1.702*h) (the model-zoo PanGu-Alpha), "gelu_tanh" MindSpore's GeLU, the tanh
    approximation (the older PanGu-Alpha release code)."""

    def __init__(self, config, strategies):
        super().__init__()
        e, f = config.hidden_size, config.ffn_hidden_size
        cdt, pdt = ms_dtype(config.compute_dtype), ms_dtype(config.param_init_type)
        r = config.initializer_range
        self.c_fc = Conv1D(e, f, r, strategies, "column", cdt, pdt)
        self.c_proj = Conv1D(f, e, r, strategies, "row", cdt, pdt)
        inner = strategies.inner
        self.activation = config.activation
        fused = cpu_kernels.fused_ops() if self.activation == "gelu" else None
        self.fused_gelu = None if fused is None else fused.bias_gelu  # inference on CPU: c_fc's bias + GELU in one
        if self.activation == "gelu":
            self.erf = ops.Erf().shard((inner,))
            self.mul = ops.Mul().shard((inner, inner))
            self.add_one = ops.Add().shard((inner, ()))
            self.scale = ops.Mul().shard((inner, ()))
            self.scale_half = ops.Mul().shard((inner, ()))
        elif self.activation == "fast_gelu":
            self.act = ops.FastGeLU().shard((inner,))
        else:
            self.act = ops.GeLU().shard((inner,))
        self.dropout = Dropout(config.hidden_dropout, strategies.hidden)
        self.add_residual = ops.Add().shard((strategies.hidden, strategies.hidden))

    def construct(self, x, residual):
        if self.fused_gelu is not None and self.c_fc.strips:
            g = self.c_fc.gelu(x)
        elif self.fused_gelu is not None and not self.training:
            g = self.fused_gelu(self.c_fc.product(x), self.c_fc.cast(self.c_fc.bias, ms.float32))
        else:
            h = self.c_fc(x)
            if self.activation == "gelu":
                # exact GELU: 0.5 * h * (1 + erf(h / sqrt(2)))
                g = self.scale_half(self.mul(h, self.add_one(self.erf(self.scale(h, 1.0 / math.sqrt(2.0))), 1.0)),
                                    0.5)
            else:
                g = self.act(h)
        if self.c_proj.strips:  # (strip order only outside training: no dropout)
            return self.c_proj.plus(g, residual)
        return self.add_residual(residual, self.dropout(self.c_proj(g)))


class AttentionCore(nn.Cell):
    """Scaled dot-product attention over [B,H,T,D] heads with -1e4 masking and an fp32 softmax."""

    def __init__(self, config, strategies):
        super().__init__()
        self.scale = 1.0 / math.sqrt(config.hidden_size // config.num_heads)
        self.compute_dtype = ms_dtype(config.compute_dtype)
        self.softmax_dtype = ms_dtype(config.softmax_compute_type)
        s = strategies
        self.qk = ops.BatchMatMul(transpose_b=True).shard((s.heads, s.heads))
        self.pv = ops.BatchMatMul().shard((s.heads, s.heads))
        self.mul_scale = ops.Mul().shard((s.heads, ()))
        self.mul_mask = ops.Mul().shard((s.heads, s.mask))
        self.add_bias = ops.Add().shard((s.heads, s.mask))
        self.softmax = ops.Softmax(axis=-1).shard((s.heads,))
        self.dropout = Dropout(config.attention_dropout, s.heads)
        self.cast = ops.Cast()

    def construct(self, q, k, v, may_attend, bias):
        cdt = self.compute_dtype
        scores = self.qk(self.cast(q, cdt), self.cast(k, cdt))
        scores = self.mul_scale(self.cast(scores, ms.float32), self.scale)
        scores = self.add_bias(self.mul_mask(scores, may_attend), bias)
        probs = self.softmax(self.cast(scores, self.softmax_dtype))
        probs = self.dropout(probs)
        return self.cast(self.pv(self.cast(probs, cdt), self.cast(v, cdt)), ms.float32)


class _Heads(nn.Cell):
    """Split [B*T, E] into heads [B,H,T,D] and merge back."""

    def __init__(self, config, strategies):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.hidden_size = config.hidden_size
        self.reshape = ops.Reshape()
        self.split_t = ops.Transpose().shard((strategies.bthd,))
        self.merge_t = ops.Transpose().shard((strategies.heads,))

    def split(self, x, batch, seq):
        x = self.reshape(x, (batch, seq, self.num_heads, self.head_dim))
        return self.split_t(x, (0, 2, 1, 3))

    def merge(self, x, batch, seq):
        x = self.merge_t(x, (0, 2, 1, 3))
        return self.reshape(x, (batch * seq, self.hidden_size))


class KVCacheWrite(nn.Cell):
    """In-place writes into a cache Parameter [B*H, L, D] (row b*H + h holds head h of batch row b, slots 0..L-1).

    `reset` (prefill) sets whole rows: the T new slots, zeros after them (ScatterUpdate along rows). `add` (decode)
    adds each batch row's new vector at its own slot (IndexAdd along slots, over the S distinct slots of the step: rows
    that share a slot share a column of the one-hot); the slot is zero (rows are reset by their prefill and each slot
    is written once), so the sum is the vector itself, and rows that must not write get a zero one-hot. Neither
    copies the cache, and attention reads the [B*H, L, D] Parameter as it is: MindSpore's CPU backend copies a
    Parameter it reshapes (a [B*H*L, D] cache read as heads cost a copy of the whole cache at every step)."""

    def __init__(self):
        super().__init__()
        self.scatter = ops.ScatterUpdate(use_locking=False).shard(((1, 1, 1), (1,), (1, 1, 1)))
        self.index_add = ops.IndexAdd(axis=1, use_lock=False).shard(((1, 1, 1), (1,), (1, 1, 1)))
        self.reshape = ops.Reshape()
        self.mul = ops.Mul()
        self.concat = ops.Concat(axis=1)

    def reset(self, cache, new, rows):
        """new [b,H,T,D] (T <= L), rows int32 [b*H]: cache rows `rows` := new, then zeros; returns the cache."""
        b, h, t, d = new.shape
        rows_new = self.reshape(new, (b * h, t, d))
        tail = ops.zeros((b * h, cache.shape[1] - t, d), new.dtype)  # a concat, not ops.pad: CPU PadV3 ran at ~0.5 GB/s
        return self.scatter(cache, rows, self.concat((rows_new, tail)))

    def add(self, cache, new, slots, onehot):
        """new [B,H,1,D], slots int32 [S] (the step's distinct slots), onehot f32 [B*H, S, 1] (1 where cache row
        b*H + h meets batch row b's slot and that row writes): adds each vector at its slot; returns the cache."""
        b, h, _, d = new.shape
        return self.index_add(cache, slots, self.mul(self.reshape(new, (b * h, 1, d)), onehot))


class _CachedAttention(nn.Cell):
    """Base of the attention cells: the subclass builds its input projections, then calls `_build_output`."""

    def _build_output(self, config, strategies, cdt, pdt):
        """c_proj [E,E], head split/merge, the attention core, KV-cache writers, the residual dropout and sum."""
        e = config.hidden_size
        self.c_proj = Conv1D(e, e, config.initializer_range, strategies, "row", cdt, pdt)
        self.heads = _Heads(config, strategies)
        self.core = AttentionCore(config, strategies)
        self.write_k = KVCacheWrite()
        self.write_v = KVCacheWrite()
        fused = cpu_kernels.fused_ops()
        fp32 = cdt == ms.float32 and ms_dtype(config.softmax_compute_type) == ms.float32
        # on CPU, attention through a KV cache runs the fused kernels (`fused_step`); both or neither are set
        self.fused_attend = fused.decode_attention if fused is not None and fp32 else None
        self.fused_prefill = fused.prefill_attention if fused is not None and fp32 else None
        # the score scale once per head: its static length gives the kernels' output width in a dynamic-shape graph
        self.attend_scale = ms.Tensor([self.core.scale] * config.num_heads, ms.float32)
        self.take_window = ops.StridedSlice()
        self.as_rows = ops.Reshape()
        self.dropout = Dropout(config.hidden_dropout, strategies.hidden)
        self.add_residual = ops.Add().shard((strategies.hidden, strategies.hidden))

    def _project(self, out, residual):
        """residual + dropout(c_proj(out)), out [B*T, E] (heads merged)."""
        if self.c_proj.strips:  # (strip order only outside training: no dropout)
            return self.c_proj.plus(out, residual)
        return self.add_residual(residual, self.dropout(self.c_proj(out)))

    def _attend_and_project(self, q, k, v, residual, batch, seq, may_attend, bias, k_cache, v_cache, cache_index,
                            attend_cache):
        """Split q/k/v [B*T, E] into heads, attend, merge, c_proj, dropout, add to the residual. A decode step with
        the fused kernel takes q and kv from the projections as they are (see `fused_step`)."""
        q = self.heads.split(q, batch, seq)
        k = self.heads.split(k, batch, seq)
        v = self.heads.split(v, batch, seq)
        out = self.attend(q, k, v, may_attend, bias, k_cache, v_cache, cache_index, attend_cache)
        return self._project(self.heads.merge(out, batch, seq), residual)

    def fused_step(self, q, kv, residual, may_attend, bias, k_cache, v_cache, cache_index, attend_cache):
        """Attention through the fused kernels (model/cpu_kernels), then c_proj onto the residual: the heads of q
        [rows, >=E] (its first E columns) with the new k|v (the last 2E columns of kv). A decode step
        (DecodeAttention) adds them at their slots and attends over the caches; a prefill (PrefillAttention) resets
        the cache rows `cache_index` to them and attends under may_attend/bias [B,H,T,T]. Arguments as `attend`'s."""
        if attend_cache:
            slots, onehot = cache_index
            out = self.fused_attend(q, kv, k_cache, v_cache, slots, onehot, may_attend, bias, self.attend_scale)
        else:
            out = self.fused_prefill(q, kv, k_cache, v_cache, cache_index, may_attend, bias, self.attend_scale)
        return self._project(out, residual)

    def _window(self, cache, window):
        """The first `window` slots of every cache row [B*H, W, D]: the cache itself when the window covers it, else
        a copy of those slots only."""
        rows, length, d = cache.shape
        if window == length:
            return cache
        return self.take_window(cache, (0, 0, 0), (rows, window, d), (1, 1, 1))

    def attend(self, q, k, v, may_attend, bias, k_cache, v_cache, cache_index, attend_cache):
        """Attention of heads q over k, v, optionally through a KV cache.

        Without a cache: plain attention. With cache Parameters [B*H, L, D] (`KVCacheWrite`), prefill
        (`attend_cache=False`) resets the rows `cache_index` [B*H] to the new k/v and attends over them; decode
        (`attend_cache=True`, `cache_index` = (slots [B], one-hot [B*H, B, 1])) adds the new k/v at each row's slot,
        then attends over the first W slots of every row, with the heads as the batch axis: `may_attend` and `bias`
        come as [B*H, 1, W] there.
        """
        if k_cache is None:
            return self.core(q, k, v, may_attend, bias)
        if attend_cache:  # (without the fused kernel: `fused_step`)
            slots, onehot = cache_index
            b, h, _, d = q.shape
            k_all = self.write_k.add(k_cache, k, slots, onehot)
            v_all = self.write_v.add(v_cache, v, slots, onehot)
            window = may_attend.shape[-1]
            out = self.core(self.as_rows(q, (b * h, 1, d)), self._window(k_all, window), self._window(v_all, window),
                            may_attend, bias)
            return self.as_rows(out, (b, h, 1, d))
        k_all = self.write_k.reset(k_cache, k, cache_index)
        v_all = self.write_v.reset(v_cache, v, cache_index)
        out = self.core(q, k, v, may_attend, bias)
        return ops.depend(ops.depend(out, k_all), v_all)


class Attention(_CachedAttention):
    """GPT-2 self-attention: c_attn [E,3E] -> q,k,v; optional KV cache; c_proj [E,E]; onto the residual."""

    def __init__(self, config, strategies):
        super().__init__()
        e = config.hidden_size
        cdt, pdt = ms_dtype(config.compute_dtype), ms_dtype(config.param_init_type)
        r = config.initializer_range
        self.c_attn = Conv1D(e, 3 * e, r, strategies, "column", cdt, pdt)
        self._build_output(config, strategies, cdt, pdt)
        self.split3 = ops.Split(axis=1, output_num=3).shard(((strategies.dp, 1),))
        self.split2 = ops.Split(axis=1, output_num=2).shard(((strategies.dp, 1),))
        self.hidden_size = e
        self.q_apart = ms.get_context("device_target") == "CPU"  # (CPU runs standalone: no sharded column split)

    def construct(self, x, residual, batch, seq, may_attend, bias, k_cache=None, v_cache=None, cache_index=None,
                  attend_cache=False):
        """x [B*T, E] -> residual + out [B*T, E]. See `attend` for the cache arguments."""
        if k_cache is not None and self.fused_attend is not None:
            qkv = self.c_attn(x)
            return self.fused_step(qkv, qkv, residual, may_attend, bias, k_cache, v_cache, cache_index, attend_cache)
        rows = x.shape[0]  # a dynamic-shape graph (CPU prefill) takes the split: no runtime switch per layer
        if self.q_apart and not self.c_attn.strips and not (F.isconstant(rows) and rows < BLOCK_MIN_ROWS):
            q, kv = self.c_attn.split_columns(x, self.hidden_size)
            k, v = self.split2(kv)
        else:
            q, k, v = self.split3(self.c_attn(x))
        return self._attend_and_project(q, k, v, residual, batch, seq, may_attend, bias, k_cache, v_cache,
                                        cache_index, attend_cache)


class TopQueryAttention(_CachedAttention):
    """Top query layer attention: Q = q_attn(query embedding), K,V = c_attn [E,2E] of the normed hidden states."""

    def __init__(self, config, strategies):
        super().__init__()
        e = config.hidden_size
        cdt, pdt = ms_dtype(config.compute_dtype), ms_dtype(config.param_init_type)
        r = config.initializer_range
        self.q_attn = Conv1D(e, e, r, strategies, "column", cdt, pdt)
        self.c_attn = Conv1D(e, 2 * e, r, strategies, "column", cdt, pdt)
        self._build_output(config, strategies, cdt, pdt)
        self.split2 = ops.Split(axis=1, output_num=2).shard(((strategies.dp, 1),))

    def construct(self, x, query, residual, batch, seq, may_attend, bias, k_cache=None, v_cache=None,
                  cache_index=None, attend_cache=False):
        if k_cache is not None and self.fused_attend is not None:
            return self.fused_step(self.q_attn(query), self.c_attn(x), residual, may_attend, bias, k_cache, v_cache,
                                   cache_index, attend_cache)
        k, v = self.split2(self.c_attn(x))
        return self._attend_and_project(self.q_attn(query), k, v, residual, batch, seq, may_attend, bias, k_cache,
                                        v_cache, cache_index, attend_cache)


class Block(nn.Cell):
    """Pre-LN GPT-2 block: x + attn(ln_1(x)); then + mlp(ln_2(.))."""

    def __init__(self, config, strategies, attention_cls=None):
        super().__init__()
        e, eps = config.hidden_size, config.layernorm_epsilon
        pdt = ms_dtype(config.param_init_type)
        self.ln_1 = LayerNorm(e, eps, strategies, pdt)
        self.attn = (attention_cls or Attention)(config, strategies)
        self.ln_2 = LayerNorm(e, eps, strategies, pdt)
        self.mlp = MLP(config, strategies)

    def construct(self, x, batch, seq, may_attend, bias, k_cache=None, v_cache=None, cache_index=None,
                  attend_cache=False):
        x = self.attn(self.ln_1(x), x, batch, seq, may_attend, bias, k_cache, v_cache, cache_index, attend_cache)
        return self.mlp(self.ln_2(x), x)


class TopQueryLayer(Block):
    """The top query layer: residual = ln_f output; attention with position queries; MLP on ln_2; no final LN."""

    def __init__(self, config, strategies):
        super().__init__(config, strategies, attention_cls=TopQueryAttention)

    def construct(self, x, query, batch, seq, may_attend, bias, k_cache=None, v_cache=None, cache_index=None,
                  attend_cache=False):
        x = self.attn(self.ln_1(x), query, x, batch, seq, may_attend, bias, k_cache, v_cache, cache_index,
                      attend_cache)
        return self.mlp(self.ln_2(x), x)
