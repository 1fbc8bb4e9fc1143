"""The reference's optimizer recipe inside mindformers: its LR schedule (LR `FlooredCosineWithWarmUpLR`), its weight
decay on every parameter, and the trainer that builds them (TRAINER `PanguCodeCLMTrainer`).

The reference's DeepSpeed config has an `optimizer` section, so DeepSpeed builds AdamW from `model.parameters()` as one
group: weight decay 0.01 applies to biases and LayerNorm weights too. mindformers' `get_optimizer_grouped_parameters`
exempts 1-D parameters and biases. `pangu.weight_decay_params` chooses: `all` (the reference, default) or
`except_bias_and_norm` (mindformers' grouping).
"""
import logging

import numpy as np
import mindspore as ms
from mindspore import Tensor, ops
from mindspore.nn.learning_rate_schedule import LearningRateSchedule
from mindformers.tools.register import MindFormerModuleType, MindFormerRegister
from mindformers.trainer.causal_language_modeling.causal_language_modeling import CausalLanguageModelingTrainer

from .lr import lr_values

logger = logging.getLogger(__name__)
WEIGHT_DECAY_PARAMS = ("all", "except_bias_and_norm")


@MindFormerRegister.register(MindFormerModuleType.LR)
class FlooredCosineWithWarmUpLR(LearningRateSchedule):
    """The reference's schedule (`lr.lr_values`): linear warm-up from 0 over ceil(warmup_ratio x total) steps, then
    learning_rate x max(lr_end / learning_rate, 1/2 (1 + cos(pi p))).

    The values are computed once in float64 and looked up by step (clamped to total_steps), so the optimizer's lr at
    step k is lr_values(...)[k] rounded to float32.
    """

    def __init__(self, learning_rate, total_steps, warmup_ratio=0.01, lr_end=0.0, warmup_steps=None, **kwargs):
        super().__init__()
        unknown = sorted(k for k, v in kwargs.items() if v is not None)
        if unknown:
            raise ValueError(f"lr_schedule.{unknown[0]}: unknown key for FlooredCosineWithWarmUpLR (it takes "
                             f"learning_rate, lr_end, warmup_ratio, warmup_steps, total_steps)")
        values = lr_values(float(learning_rate), int(total_steps), float(warmup_ratio), float(lr_end), warmup_steps)
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.table = Tensor(np.asarray(values, np.float32))
        self.last = Tensor(self.total_steps, ms.int32)
        self.zero = Tensor(0, ms.int32)

    def construct(self, global_step):
        step = ops.clip_by_value(ops.cast(global_step, ms.int32), self.zero, self.last)
        return ops.gather(self.table, step, 0)


def param_groups(network, weight_decay, weight_decay_params="all"):
    """Optimizer parameter groups: one group with `weight_decay` on every trainable parameter (the reference), or
    mindformers' grouping (no decay on 1-D parameters and biases)."""
    if weight_decay_params not in WEIGHT_DECAY_PARAMS:
        raise ValueError(f"pangu.weight_decay_params: expected one of {WEIGHT_DECAY_PARAMS}, "
                         f"got {weight_decay_params!r}")
    weight_decay = float(weight_decay or 0.0)
    if weight_decay_params == "all":
        return [{"params": network.trainable_params(), "weight_decay": weight_decay}]
    from mindformers.trainer.optimizer_grouped_parameters import get_optimizer_grouped_parameters
    return get_optimizer_grouped_parameters(model=network, weight_decay=weight_decay)


def build_optimizer(network, config):
    """(optimizer, lr schedule) from a run config's `optimizer`, `lr_schedule` and `pangu.weight_decay_params`."""
    from mindformers.core.lr import build_lr
    from mindformers.core.optim import build_optim
    lr_schedule = build_lr(config.lr_schedule)
    choice = (config.get("pangu") or {}).get("weight_decay_params", "all")
    groups = param_groups(network, config.optimizer.get("weight_decay"), choice)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    logger.info("optimizer %s, lr %s: weight decay %g on %d of %d parameters (pangu.weight_decay_params: %s)",
                config.optimizer.type, type(lr_schedule).__name__, max([g["weight_decay"] for g in groups] or [0]),
                len(decayed), sum(len(g["params"]) for g in groups), choice)
    optimizer = build_optim(config.optimizer, default_args={"params": groups, "learning_rate": lr_schedule})
    return optimizer, lr_schedule


@MindFormerRegister.register(MindFormerModuleType.TRAINER)
class PanguCodeCLMTrainer(CausalLanguageModelingTrainer):
    """mindformers' causal-LM trainer with the optimizer built by `build_optimizer` (reference weight decay)."""

    def create_optimizer_scheduler(self, network, model_params):
        self.optimizer, self.lr_scheduler = build_optimizer(network, self.config)
        return self.optimizer
