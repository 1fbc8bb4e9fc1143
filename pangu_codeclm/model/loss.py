"""Modality-restricted (masked) cross-entropy, HF-style shifted inside.

For targets t = 1..T-1 (predicted from position t-1): label = labels[:, t], side = docstr_mask[:, t] (1 = text side,
0 = code side). The log-partition runs only over the target's modality vocabulary:
    loss_t = log sum_{v in side} exp(z_v) - z_label
Labels -100 are ignored; the result is the mean over counted targets. With all-ones masks (empty separation map) this is
plain cross-entropy. Everything runs in fp32 and is sharded over the vocabulary (model/parallel.py).
"""
import mindspore as ms
from mindspore import Tensor, nn, ops

IGNORE_INDEX = -100


class ModalityMaskedCrossEntropy(nn.Cell):
    """construct(logits [B,T,V] fp32, labels [B,T] int, docstr_mask [B,T] or None, code_mask [V], text_mask [V])."""

    def __init__(self, strategies=None):
        super().__init__()
        if strategies is None:
            from .parallel import Strategies
            from ..config import PARALLEL_DEFAULTS
            strategies = Strategies(PARALLEL_DEFAULTS)
        s = strategies
        vocab, rows = s.vocab, s.rows
        rows3 = rows + (1,)
        self.slice_logits = ops.StridedSlice().shard((vocab,))
        self.slice_rows = ops.StridedSlice().shard((rows,))
        self.reduce_max = ops.ReduceMax(keep_dims=True).shard((vocab,))
        self.sub_max = ops.Sub().shard((vocab, rows3))
        self.exp = ops.Exp().shard((vocab,))
        self.sub_one = ops.Sub().shard((vocab, ()))
        self.mul_big = ops.Mul().shard((vocab, ()))
        self.add_shift = ops.Add().shard((vocab, vocab))
        self.on_value = Tensor(1.0, ms.float32)
        self.off_value = Tensor(0.0, ms.float32)
        self.side_code = ops.Mul().shard((rows3, s.vocab_vector))
        self.side_text = ops.Mul().shard((rows3, s.vocab_vector))
        self.side_add = ops.Add().shard((vocab, vocab))
        self.mul_side = ops.Mul().shard((vocab, vocab))
        self.reduce_sum = ops.ReduceSum(keep_dims=False).shard((vocab,))
        self.log = ops.Log().shard((rows,))
        self.onehot = ops.OneHot(axis=-1).shard(((s.dp, 1, s.vocab[2]), (), ()))
        self.mul_target = ops.Mul().shard((vocab, vocab))
        self.target_sum = ops.ReduceSum(keep_dims=False).shard((vocab,))
        self.not_equal = ops.NotEqual().shard((rows, ()))
        self.maximum = ops.Maximum().shard((rows, ()))
        self.add_max = ops.Add().shard((rows, rows))
        self.sub_target = ops.Sub().shard((rows, rows))
        self.mul_weight = ops.Mul().shard((rows, rows))
        self.sum_all = ops.ReduceSum(keep_dims=False).shard((rows,))
        self.sum_weight = ops.ReduceSum(keep_dims=False).shard((rows,))
        self.one_minus = ops.Sub().shard(((), rows))
        self.div = ops.RealDiv()
        self.max_count = ops.Maximum()
        self.squeeze = ops.Squeeze(-1)
        self.expand = ops.ExpandDims()
        self.cast = ops.Cast()
        self.shape = ops.Shape()

    def construct(self, logits, labels, docstr_mask, code_mask, text_mask):
        b, t, v = self.shape(logits)
        z = self.slice_logits(self.cast(logits, ms.float32), (0, 0, 0), (b, t - 1, v), (1, 1, 1))
        target = self.slice_rows(self.cast(labels, ms.int32), (0, 1), (b, t), (1, 1))
        weight = self.cast(self.not_equal(target, IGNORE_INDEX), ms.float32)
        safe_target = self.maximum(target, 0)
        if docstr_mask is None:
            text_side = ops.zeros_like(weight)
        else:
            text_side = self.cast(self.slice_rows(self.cast(docstr_mask, ms.int32), (0, 1), (b, t), (1, 1)),
                                  ms.float32)
        code_side = self.one_minus(1.0, text_side)
        allowed = self.side_add(self.side_code(self.expand(code_side, -1), code_mask),
                                self.side_text(self.expand(text_side, -1), text_mask))
        # max over the allowed ids only (disallowed ones pushed down by 1e9) keeps the sum of exps >= 1
        zmax = ops.stop_gradient(self.reduce_max(self.add_shift(z, self.mul_big(self.sub_one(allowed, 1.0), 1e9)), -1))
        e = self.mul_side(self.exp(self.sub_max(z, zmax)), allowed)
        lse = self.add_max(self.log(self.reduce_sum(e, -1)), self.squeeze(zmax))
        onehot = self.onehot(safe_target, v, self.on_value, self.off_value)
        z_target = self.target_sum(self.mul_target(z, onehot), -1)
        per_token = self.mul_weight(self.sub_target(lse, z_target), weight)
        count = self.max_count(self.sum_weight(weight, ()), 1.0)
        return self.div(self.sum_all(per_token, ()), count)
