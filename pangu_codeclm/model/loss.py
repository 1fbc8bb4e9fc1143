"""Modality-restricted (masked) cross-entropy, HF-style shifted inside.

For targets t = 1..T-1 (predicted from position t-1): label = labels[:, t], side = docstr_mask[:, t] (1 = text side,
0 = code side). The log-partition runs only over the target's modality vocabulary:
    loss_t = log sum_{v in side} exp(z_v) - z_label
Labels -100 are ignored; the result is the mean over counted targets. With all-ones masks (empty separation map) this is
plain cross-entropy. Everything runs in fp32 and is sharded over the vocabulary (model/parallel.py).
"""
import mindspore as ms
from mindspore import Tensor, nn, ops

from ..sample_format import IGNORE_INDEX


class ModalityMaskedCrossEntropy(nn.Cell):
    """construct(logits [B,T,V] fp32, labels [B,T] int, docstr_mask [B,T] or None, code_mask [V], text_mask [V]).

    The logits are not sliced: labels and sides are shifted left instead (the last position gets no target). The
    per-side sums of exp(z - max) are one [N,V] x [V,2] matmul with the two vocabulary masks, so no [B,T,V] mask is
    ever built. The max is taken over the whole vocabulary; a side's sum is clamped at 1e-30, which only matters when
    every id of the target's side is > 69 nats below the best id of the other side.
    """

    def __init__(self, strategies=None):
        super().__init__()
        if strategies is None:
            from .parallel import Strategies
            from ..config import PARALLEL_DEFAULTS
            strategies = Strategies(PARALLEL_DEFAULTS)
        s = strategies
        vocab, rows, col = s.vocab2d, s.rows, s.tokens
        self.slice_rows = ops.StridedSlice().shard((rows,))
        self.concat = ops.Concat(axis=1).shard((rows, rows))
        self.reduce_max = ops.ReduceMax(keep_dims=True).shard((vocab,))
        self.sub_max = ops.Sub().shard((vocab, (s.dp, 1)))
        self.exp = ops.Exp().shard((vocab,))
        self.stack_masks = ops.Stack(axis=1)
        self.side_sums = ops.MatMul().shard((vocab, (vocab[1], 1)))
        self.stack_sides = ops.Stack(axis=1)
        self.pick_side = ops.Mul().shard(((s.dp, 1), (s.dp, 1)))
        self.side_sum = ops.ReduceSum(keep_dims=False).shard(((s.dp, 1),))
        self.clamp = ops.Maximum().shard((col, ()))
        self.log = ops.Log().shard((col,))
        self.onehot = ops.OneHot(axis=-1).shard((vocab, (), ()))
        self.on_value = Tensor(1.0, ms.float32)
        self.off_value = Tensor(0.0, ms.float32)
        self.mul_target = ops.Mul().shard((vocab, vocab))
        self.target_sum = ops.ReduceSum(keep_dims=False).shard((vocab,))
        self.not_equal = ops.NotEqual().shard((col, ()))
        self.maximum = ops.Maximum().shard((col, ()))
        self.add_max = ops.Add().shard((col, col))
        self.sub_target = ops.Sub().shard((col, col))
        self.mul_weight = ops.Mul().shard((col, col))
        self.sum_all = ops.ReduceSum(keep_dims=False).shard((col,))
        self.sum_weight = ops.ReduceSum(keep_dims=False).shard((col,))
        self.one_minus = ops.Sub().shard(((), col))
        self.div = ops.RealDiv()
        self.max_count = ops.Maximum()
        self.reshape = ops.Reshape()
        self.cast = ops.Cast()
        self.shape = ops.Shape()

    def _shift_left(self, x, fill):
        """[B,T] -> x[:, 1:] with `fill` appended: the target of position t is token t+1."""
        b, t = self.shape(x)
        tail = self.slice_rows(x, (0, 1), (b, t), (1, 1))
        return self.concat((tail, ops.fill(x.dtype, (b, 1), fill)))

    def construct(self, logits, labels, docstr_mask, code_mask, text_mask):
        b, t, v = self.shape(logits)
        n = b * t
        z = self.reshape(self.cast(logits, ms.float32), (n, v))
        target = self.reshape(self._shift_left(self.cast(labels, ms.int32), IGNORE_INDEX), (n,))
        weight = self.cast(self.not_equal(target, IGNORE_INDEX), ms.float32)
        safe_target = self.maximum(target, 0)
        if docstr_mask is None:
            text_side = ops.zeros((n,), ms.float32)
        else:
            text_side = self.reshape(self.cast(self._shift_left(self.cast(docstr_mask, ms.int32), 0), ms.float32),
                                     (n,))
        zmax = ops.stop_gradient(self.reduce_max(z, -1))
        e = self.exp(self.sub_max(z, zmax))
        sums = self.side_sums(e, self.stack_masks((code_mask, text_mask)))          # [N, 2]: code, text
        side = self.stack_sides((self.one_minus(1.0, text_side), text_side))       # [N, 2] one-hot side
        lse = self.add_max(self.log(self.clamp(self.side_sum(self.pick_side(sums, side), 1), 1e-30)),
                           self.reshape(zmax, (n,)))
        onehot = self.onehot(safe_target, v, self.on_value, self.off_value)
        z_target = self.target_sum(self.mul_target(z, onehot), -1)
        per_token = self.mul_weight(self.sub_target(lse, z_target), weight)
        count = self.max_count(self.sum_weight(weight, ()), 1.0)
        return self.div(self.sum_all(per_token, ()), count)
