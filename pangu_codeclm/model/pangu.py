"""PanGu-Alpha CodeCLM causal LM (the released `huawei-noah/pangu-CodeCLM-*` architecture) for mindformers.

h = wte[ids] + wpe[pos] -> num_layers pre-LN blocks -> ln_f -> top query layer (queries from top_query_embedding[pos])
-> logits = h . wte^T. Parameter names are the HF checkpoint keys, with HF shapes. The separated vocabulary's
modality masks live in two non-trainable parameters, `code_vocab_mask` and `text_vocab_mask` (not HF keys).
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindformers.models.modeling_utils import PreTrainedModel
from mindformers.tools.register import MindFormerModuleType, MindFormerRegister

from ..config import ConfigError, PanguCodeCLMConfig
from ..families import family_for
from ..separation import modality_vocab_masks
from . import cpu_kernels
from .layers import MASK_VALUE, Block, Conv1D, Dropout, Embedding, LayerNorm, TopQueryLayer, ms_dtype
from .loss import ModalityMaskedCrossEntropy
from .parallel import Strategies, apply_pipeline_and_recompute

# Names that are model state but not HF checkpoint keys.
NON_HF_PARAMETERS = ("code_vocab_mask", "text_vocab_mask")


class PanguTransformer(nn.Cell):
    """Embeddings, the ordinary blocks and ln_f (HF prefix `transformer.`)."""

    def __init__(self, config, strategies):
        super().__init__()
        e = config.hidden_size
        pdt = ms_dtype(config.param_init_type)
        self.wte = Embedding(config.vocab_size, e, config.initializer_range, strategies.token_embedding(), pdt)
        self.wpe = Embedding(config.max_position_embeddings, e, config.initializer_range,
                             strategies.position_embedding(), pdt)
        self.h = nn.CellList([Block(config, strategies) for _ in range(config.num_layers)])
        self.ln_f = LayerNorm(e, config.layernorm_epsilon, strategies, pdt)
        self.add_emb = ops.Add().shard(((strategies.dp, 1, 1), (strategies.dp, 1, 1)))
        self.drop = Dropout(config.embedding_dropout, (strategies.dp, 1, 1))
        self.reshape = ops.Reshape()
        self.hidden_size = e

    def construct(self, input_ids, position_ids, may_attend, bias, k_caches=None, v_caches=None, cache_index=None,
                  attend_cache=False):
        """ln_f output [B*T, E]; with caches (tuples of [B*H*L, D] Parameters) each block writes its K/V in place."""
        batch, seq = input_ids.shape
        x = self.drop(self.add_emb(self.wte(input_ids), self.wpe(position_ids)))
        x = self.reshape(x, (batch * seq, self.hidden_size))
        i = 0
        for block in self.h:
            if k_caches is None:
                x = block(x, batch, seq, may_attend, bias)
            else:
                x = block(x, batch, seq, may_attend, bias, k_caches[i], v_caches[i], cache_index, attend_cache)
            i = i + 1
        return self.ln_f(x)


def _check_dtypes_supported(config, device_target):
    """MindSpore's CPU kernels have no bfloat16 MatMul: refuse it up front instead of failing inside a graph."""
    for key in ("compute_dtype", "param_init_type"):
        if device_target == "CPU" and getattr(config, key) == "bfloat16":
            raise ConfigError(f"config key '{key}': bfloat16 is not supported on the CPU backend; use float32 or "
                              f"float16 (bfloat16 is for Ascend)")


@MindFormerRegister.register(MindFormerModuleType.MODELS)
class PanguCodeCLMForCausalLM(PreTrainedModel):
    """PanGu-Alpha CodeCLM with a tied LM head and the modality-restricted loss.

    construct(input_ids, labels=None, position_ids=None, attention_mask=None, docstr_mask=None, prefix_lm_mask=None):
    logits [B,T,V] fp32 without labels, else the scalar loss. `attention_mask` is 2-D [B,T] (padding; causal added) or
    3-D [B,T,T] (may-attend, used as given); `prefix_lm_mask` [B,T,T] is ORed into the may-attend matrix.
    """

    config_class = PanguCodeCLMConfig
    base_model_prefix = "transformer"

    def __init__(self, config, separation_map=None):
        super().__init__(config, auto_prefix=True)
        config.validate()
        _check_dtypes_supported(config, ms.get_context("device_target"))
        self.strategies = Strategies.from_config(config)
        s = self.strategies
        e = config.hidden_size
        pdt = ms_dtype(config.param_init_type)
        self.vocab_size = config.vocab_size
        self.num_layers = config.num_layers
        self.num_cached_layers = family_for(config).cached_layers(config)   # the decoder protocol's cache count
        self.max_positions = config.max_position_embeddings
        self.hidden_size = e
        self.compute_dtype = ms_dtype(config.compute_dtype)
        self.transformer = PanguTransformer(config, s)
        self.top_query_embedding = Embedding(config.max_position_embeddings, e, config.initializer_range,
                                             s.position_embedding(), pdt)
        self.top_query_layer = TopQueryLayer(config, s)
        self.loss = ModalityMaskedCrossEntropy(s)
        self.head = ops.MatMul(transpose_b=True).shard(s.head())
        fused = cpu_kernels.fused_ops()
        fp32 = self.compute_dtype == ms.float32 and pdt == ms.float32
        self.row_head = fused.row_dot_matmul if fused is not None and fp32 else None  # few-row logits on CPU
        self.code_vocab_mask = Parameter(Tensor(np.ones(config.vocab_size, np.float32)), name="code_vocab_mask",
                                         requires_grad=False)
        self.text_vocab_mask = Parameter(Tensor(np.ones(config.vocab_size, np.float32)), name="text_vocab_mask",
                                         requires_grad=False)
        self.causal = Tensor(np.tril(np.ones((self.max_positions, self.max_positions), np.float32)))
        self.positions = Tensor(np.arange(self.max_positions, dtype=np.int32))
        self.reshape = ops.Reshape()
        self.cast = ops.Cast()
        self.slice2 = ops.StridedSlice().shard(((1, 1),))
        self.slice_pos = ops.StridedSlice().shard(((1,),))
        self.slice_last = ops.StridedSlice().shard(((s.dp, 1, 1),))
        self.or_prefix = ops.Maximum().shard(((1, 1, 1, 1), s.mask))
        self.or_prefix_keys = ops.Maximum()  # prefill only (standalone inference): [1,1,T,T] OR [B,1,1,T]
        self.key_le = ops.LessEqual()
        self.one_minus = ops.Sub().shard(((), s.rows))
        self.mul_pad = ops.Mul().shard((s.rows, ()))
        self.sub_fill = ops.Sub().shard((s.mask, ()))
        self.mul_fill = ops.Mul().shard((s.mask, ()))
        self.add_fill = ops.Add().shard((s.mask, s.mask))
        self._strips_held = False  # set_strip_layout
        self.set_separation_map(separation_map)
        apply_pipeline_and_recompute(self, config)

    # ------------------------------------------------------------------ weight layout
    @property
    def strip_layout(self):
        """Whether the projection weights are held in strip order (layers.Conv1D.set_strip_layout)."""
        return self._strips_held

    def set_strip_layout(self, strips):
        """Hold every projection weight in strip order (True, where all can: returns whether they are) or in the
        checkpoint's [in, out] order (False). Calling the network itself, reading its checkpoint parameters or
        loading into it puts the [in, out] order back first."""
        cells = [cell for _, cell in self.cells_and_names() if isinstance(cell, Conv1D)]
        strips = bool(strips and cells and all(cell.holds_strips for cell in cells))
        for cell in cells:
            cell.set_strip_layout(strips)
        self._strips_held = strips
        return strips

    def __call__(self, *args, **kwargs):
        if self.strip_layout:  # a graph of the plain forward compiles and runs with the [in, out] order
            self.set_strip_layout(False)
        return super().__call__(*args, **kwargs)

    # ------------------------------------------------------------------ separation
    def set_separation_map(self, separation_map):
        """Set the code/text vocabulary masks from a map old id -> code-side id (empty/None: nothing restricted)."""
        separation_map = dict(separation_map or {})
        code, text = modality_vocab_masks(separation_map, self.vocab_size)
        self.code_vocab_mask.set_data(Tensor(code))
        self.text_vocab_mask.set_data(Tensor(text))
        self.separation_map = separation_map

    def code_vocabulary(self):
        """float32 numpy [V]: 1 for ids generation may produce (code side; everything when the map is empty)."""
        return self.code_vocab_mask.asnumpy().copy()

    def generate(self, input_ids, **kwargs):
        """Refused: mindformers' GenerationMixin does not know this network's KV caches. Generation is one layer up."""
        raise NotImplementedError("PanguCodeCLMForCausalLM.generate: use pangu_codeclm.infer.generate.generate(network, "
                                  "input_ids, ...) or pangu_codeclm.from_pretrained(path).generate(...)")

    # ------------------------------------------------------------------ masks
    def _default_positions(self, batch, seq):
        pos = self.slice_pos(self.positions, (0,), (seq,), (1,))
        return ops.broadcast_to(self.reshape(pos, (1, seq)), (batch, seq))

    def _masks(self, batch, seq, attention_mask, prefix_lm_mask, prefix_index=None):
        """(may_attend [B,1,T,T], additive bias [B,1,T,T]: -1e4 where not allowed, -1e4 more on padding keys).

        `prefix_lm_mask` [B,T,T] is ORed in; so are, with `prefix_index` int32 [B] (the reference's index form), the
        keys at positions <= it for every query (-1: none)."""
        bias = ops.zeros((batch, 1, 1, seq), ms.float32)
        if attention_mask is not None and len(attention_mask.shape) == 3:
            may = self.reshape(self.cast(attention_mask, ms.float32), (batch, 1, seq, seq))
        else:
            may = self.reshape(self.slice2(self.causal, (0, 0), (seq, seq), (1, 1)), (1, 1, seq, seq))
            if attention_mask is not None:
                pad = self.mul_pad(self.one_minus(1.0, self.cast(attention_mask, ms.float32)), -MASK_VALUE)
                bias = self.reshape(pad, (batch, 1, 1, seq))
        if prefix_lm_mask is not None:
            may = self.or_prefix(may, self.reshape(self.cast(prefix_lm_mask, ms.float32), (batch, 1, seq, seq)))
        if prefix_index is not None:
            keys = self.reshape(self.slice_pos(self.positions, (0,), (seq,), (1,)), (1, seq))
            visible = self.cast(self.key_le(keys, self.reshape(prefix_index, (batch, 1))), ms.float32)
            may = self.or_prefix_keys(may, self.reshape(visible, (batch, 1, 1, seq)))
        may = ops.broadcast_to(may, (batch, 1, seq, seq))
        return may, self._fill_bias(may, bias)

    def _fill_bias(self, may, bias):
        """(may - 1) * 1e4 + bias: the additive term of the masked scores."""
        return self.add_fill(self.mul_fill(self.sub_fill(may, 1.0), MASK_VALUE), bias)

    # ------------------------------------------------------------------ forward
    def _hidden(self, input_ids, position_ids, may_attend, bias, k_caches=None, v_caches=None, cache_index=None,
                attend_cache=False):
        """Final hidden states [B*T, E]; with KV caches, every attention layer writes its K/V in place."""
        batch, seq = input_ids.shape
        h = self.transformer(input_ids, position_ids, may_attend, bias, k_caches, v_caches, cache_index,
                             attend_cache)
        query = self.reshape(self.top_query_embedding(position_ids), (batch * seq, self.hidden_size))
        if k_caches is None:
            return self.top_query_layer(h, query, batch, seq, may_attend, bias)
        return self.top_query_layer(h, query, batch, seq, may_attend, bias, k_caches[self.num_layers],
                                    v_caches[self.num_layers], cache_index, attend_cache)

    def _logits(self, h):
        """Tied head: h [N, E] . wte^T -> fp32 [N, V]."""
        w = self.cast(self.transformer.wte.weight, self.compute_dtype)
        return self.cast(self.head(self.cast(h, self.compute_dtype), w), ms.float32)

    def _few_logits(self, h):
        """The logits of a prefill's last positions or a decode step (few rows): the RowDotMatMul kernel where it
        is built (it streams the table once per call; MindSpore's MatMul repacks it), else `_logits`."""
        if self.row_head is None:
            return self._logits(h)
        return self.row_head(self.cast(h, ms.float32), self.transformer.wte.weight)

    def construct(self, input_ids, labels=None, position_ids=None, attention_mask=None, docstr_mask=None,
                  prefix_lm_mask=None):
        batch, seq = input_ids.shape
        if position_ids is None:
            position_ids = self._default_positions(batch, seq)
        may, bias = self._masks(batch, seq, attention_mask, prefix_lm_mask)
        h = self._hidden(input_ids, position_ids, may, bias)
        logits = self.reshape(self._logits(h), (batch, seq, self.vocab_size))
        if labels is None:
            return logits
        return self.loss(logits, labels, docstr_mask, self.code_vocab_mask, self.text_vocab_mask)

    # ------------------------------------------------------------------ incremental decoding (infer/generate.py)
    def _per_head(self, may, bias):
        """may/bias [B,1,Tq,Tk] broadcast once to [B,H,Tq,Tk]: every layer's mask ops then see equal shapes (a
        broadcasting elementwise op keeps ~4x its output alive per graph on CPU; see model/layers.py)."""
        shape = (may.shape[0], self.config.num_heads, may.shape[2], may.shape[3])
        return ops.broadcast_to(may, shape), ops.broadcast_to(bias, shape)

    def prefill(self, input_ids, position_ids, attention_mask, prefix_index, k_caches, v_caches, cache_index):
        """Left-padded prompt [B,P] with a 2-D mask: sets the cache rows `cache_index` int32 [B*H] (b*H + h of each
        prompt's row) of every layer's K/V caches (tuples of num_cached_layers Parameters [B*H, L, D]) to its P slots,
        zeros after them, and returns the last-position logits [B,V].

        `prefix_index` int32 [B]: keys at positions <= it are visible to every query (the reference's prefix-LM index
        form, ORed into the causal mask); -1 leaves the row causal. Decode steps stay causal over the cache (the
        prefix keys are cached as computed here)."""
        batch, seq = input_ids.shape
        may, bias = self._per_head(*self._masks(batch, seq, attention_mask, None, prefix_index))
        h = self._hidden(input_ids, position_ids, may, bias, k_caches, v_caches, cache_index, False)
        h = self.reshape(h, (batch, seq, self.hidden_size))
        last = self.reshape(self.slice_last(h, (0, seq - 1, 0), (batch, seq, self.hidden_size), (1, 1, 1)),
                            (batch, self.hidden_size))
        return self._few_logits(last)

    def decode(self, input_ids, position_ids, valid, write_slots, write_onehot, k_caches, v_caches):
        """One token per row [B,1], its K/V added at its cache slot, one of the distinct slots `write_slots` int32
        [S] (`write_onehot` f32 [B*H, S, 1]: 1 where cache row b*H + h meets the slot of batch row b and that row
        writes; see layers.KVCacheWrite); it
        attends the cache slots marked in `valid` [B,W] (itself included; W <= L: the first W slots). Returns logits
        [B,V]."""
        batch = input_ids.shape[0]
        window = valid.shape[1]
        may = self.reshape(self.cast(valid, ms.float32), (batch, 1, 1, window))
        bias = self._fill_bias(may, ops.zeros((batch, 1, 1, window), ms.float32))
        heads = (batch * self.config.num_heads, 1, window)  # the heads are the batch axis of the cached attention
        may, bias = (self.reshape(m, heads) for m in self._per_head(may, bias))
        h = self._hidden(input_ids, position_ids, may, bias, k_caches, v_caches, (write_slots, write_onehot), True)
        return self._few_logits(h)
