"""The train-one-step cell used by the Trainer (mindformers WRAPPER `PanguTrainOneStepCell`) and the reference's loss
scaler (WRAPPER `HysteresisLossScaleUpdateCell`, DeepSpeed's dynamic scale with hysteresis).

Forward + backward with loss scaling, gradient all-reduce (data parallel), an overflow check built from `IsFinite`
(the stock one calls NPU float-status ops, which do not exist on CPU), dynamic loss-scale update, global-norm clipping
and the optimizer step, skipped on overflow. Returns the outputs named in `STEP_OUTPUTS`, in that order: (loss,
overflow, loss_scale, learning_rate, global_norm) and, with `log_code_loss` (Text-Code CLM, where the loss also covers
docstring tokens), the code-token loss as a sixth output (one extra forward pass with docstring targets masked out).
Callbacks read them by name with `name_step_outputs`.
"""
import mindspore as ms
from mindspore import nn, ops
from mindspore.ops import composite as C
from mindspore.ops import functional as F
from mindformers.tools.register import MindFormerModuleType, MindFormerRegister
from mindformers.wrapper.wrapper import MFTrainOneStepCell

from ..sample_format import IGNORE_INDEX

# The train step's outputs, in the order `PanguTrainOneStepCell.construct` returns them; `code_loss` only with
# `log_code_loss`. The Trainer hands them to callbacks as `run_context.original_args().net_outputs`.
STEP_OUTPUTS = ("loss", "overflow", "loss_scale", "learning_rate", "global_norm", "code_loss")


def name_step_outputs(outputs):
    """{name: output} of a step's `net_outputs` (a lone value is the loss); names past the outputs given are absent."""
    if not isinstance(outputs, (tuple, list)):
        outputs = (outputs,)
    if len(outputs) > len(STEP_OUTPUTS):
        raise ValueError(f"train step returned {len(outputs)} outputs; expected at most {len(STEP_OUTPUTS)}: "
                         f"{', '.join(STEP_OUTPUTS)}")
    return dict(zip(STEP_OUTPUTS, outputs))


_unscale = C.MultitypeFuncGraph("_unscale")


@_unscale.register("Tensor", "Tensor")
def _unscale_grad(scale, grad):
    return grad * F.cast(ops.reciprocal(scale), F.dtype(grad))


_nonfinite = C.MultitypeFuncGraph("_nonfinite")


@_nonfinite.register("Tensor")
def _count_nonfinite(grad):
    return ops.logical_not(ops.IsFinite()(grad)).astype(ms.float32).sum()


@MindFormerRegister.register(MindFormerModuleType.WRAPPER)
class PanguTrainOneStepCell(MFTrainOneStepCell):
    """CPU-safe `MFTrainOneStepCell`: same outputs, overflow detected with IsFinite on the reduced gradients.

    `scale_sense` is a number/Tensor (static scale; 1.0 for fp32) or a `DynamicLossScaleUpdateCell` (fp16 on Ascend).
    """

    def __init__(self, network, optimizer, use_clip_grad=True, max_grad_norm=1.0, scale_sense=1.0,
                 log_code_loss=False, **kwargs):
        super().__init__(network, optimizer, use_clip_grad=use_clip_grad, max_grad_norm=max_grad_norm,
                         scale_sense=scale_sense, **kwargs)
        self.log_code_loss = bool(log_code_loss)
        # fp32 runs use a fixed scale of 1: skip the scale/unscale passes over every gradient (decided at compile time)
        self.unit_scale = self.loss_scaling_manager is None and float(self.scale_sense.asnumpy().reshape(-1)[0]) == 1.0
        self.hyper_map = C.HyperMap()
        self.zero = ms.Tensor(0.0, ms.float32)

    def construct(self, *inputs):
        scaling_sens = self.scale_sense
        loss = self.network(*inputs)
        if self.unit_scale:
            grads = self.grad(self.network, self.weights)(*inputs, F.ones_like(loss))
        else:
            sens = F.ones_like(loss) * F.cast(scaling_sens, F.dtype(loss))
            grads = self.grad(self.network, self.weights)(*inputs, sens)
            grads = self.hyper_map(F.partial(_unscale, F.cast(scaling_sens, ms.float32)), grads)
        grads = self.grad_reducer(grads)
        bad = self.hyper_map(_nonfinite, grads)
        cond = ops.AddN()(bad) > self.zero
        overflow = cond
        if self.loss_scaling_manager is not None:
            overflow = self.loss_scaling_manager(self.scale_sense, cond)
        global_norm = self.zero
        if self.use_clip_grad:
            grads, global_norm = self.clip_grad_norm(grads)
        learning_rate = self.learning_rate
        if self.optimizer.dynamic_lr:
            learning_rate = self.learning_rate(self.optimizer.global_step).reshape(())
        if self.log_code_loss:
            code_loss = self._code_loss(*inputs)
        if not overflow:
            loss = F.depend(loss, self.optimizer(grads))
        if self.log_code_loss:  # the order of STEP_OUTPUTS
            return loss, overflow, scaling_sens, learning_rate, global_norm, code_loss
        return loss, overflow, scaling_sens, learning_rate, global_norm

    def _code_loss(self, input_ids, labels, position_ids, attention_mask, docstr_mask):
        """Loss over code targets only (docstring positions set to IGNORE_INDEX), without gradients."""
        code_labels = ops.select(docstr_mask > 0, ops.full_like(labels, IGNORE_INDEX), labels)
        return ops.stop_gradient(self.network(input_ids, code_labels, position_ids, attention_mask, docstr_mask))


@MindFormerRegister.register(MindFormerModuleType.WRAPPER)
class HysteresisLossScaleUpdateCell(nn.Cell):
    """Dynamic loss scale with DeepSpeed's hysteresis (the reference's `ds_config`: initial 2^16, window 1000,
    hysteresis 2, min 1), for `runner_wrapper.scale_sense`.

    On overflow the scale is divided by `scale_factor` only when the hysteresis budget is spent (otherwise the budget
    drops by one); the step is skipped either way. Without overflow the scale is multiplied by `scale_factor` whenever
    (iteration - last overflow iteration) is a multiple of `scale_window`, which also restores the budget. Iterations
    count from 0 and the last overflow starts at -1, as in DeepSpeed's `DynamicLossScaler`. MindSpore's
    `DynamicLossScaleUpdateCell` is this rule with hysteresis 1 and a window counted from the last change.
    """

    def __init__(self, loss_scale_value=2.0 ** 16, scale_factor=2, scale_window=1000, hysteresis=2,
                 min_loss_scale=1.0):
        super().__init__()
        if hysteresis < 1 or scale_window < 1 or scale_factor <= 1 or loss_scale_value < min_loss_scale:
            raise ValueError(f"runner_wrapper.scale_sense: need hysteresis >= 1, scale_window >= 1, scale_factor > 1 "
                             f"and loss_scale_value >= min_loss_scale; got {hysteresis}, {scale_window}, "
                             f"{scale_factor}, {loss_scale_value} < {min_loss_scale}")
        self.loss_scale_value = float(loss_scale_value)
        self.scale_factor = ms.Tensor(float(scale_factor), ms.float32)
        self.scale_window = ms.Tensor(int(scale_window), ms.int32)
        self.hysteresis = ms.Tensor(int(hysteresis), ms.int32)
        self.min_loss_scale = ms.Tensor(float(min_loss_scale), ms.float32)
        self.cur_iter = ms.Parameter(ms.Tensor(0, ms.int32), name="loss_scale_cur_iter")
        self.last_overflow_iter = ms.Parameter(ms.Tensor(-1, ms.int32), name="loss_scale_last_overflow_iter")
        self.cur_hysteresis = ms.Parameter(ms.Tensor(int(hysteresis), ms.int32), name="loss_scale_cur_hysteresis")
        self.one = ms.Tensor(1, ms.int32)
        self.zero = ms.Tensor(0, ms.int32)

    def get_loss_scale(self):
        return self.loss_scale_value

    def construct(self, loss_scale, overflow):
        overflow = ops.cast(overflow, ms.bool_).reshape(())
        shift = ops.logical_and(overflow, self.cur_hysteresis <= self.one)
        lowered = ops.maximum(loss_scale / self.scale_factor, self.min_loss_scale)
        since = self.cur_iter - self.last_overflow_iter
        grow = ops.logical_and(ops.logical_not(overflow), ops.floor_mod(since, self.scale_window) == self.zero)
        on_overflow = ops.select(shift, lowered, loss_scale)
        scale = ops.select(overflow, on_overflow, ops.select(grow, loss_scale * self.scale_factor, loss_scale))
        budget = ops.select(ops.logical_and(overflow, ops.logical_not(shift)), self.cur_hysteresis - self.one,
                            ops.select(grow, self.hysteresis, self.cur_hysteresis))
        last = ops.select(overflow, self.cur_iter, self.last_overflow_iter)
        done = ops.assign(loss_scale, scale)
        done = F.depend(done, ops.assign(self.cur_hysteresis, budget))
        done = F.depend(done, ops.assign(self.last_overflow_iter, last))
        done = F.depend(done, ops.assign(self.cur_iter, self.cur_iter + self.one))
        return F.depend(overflow, done)
