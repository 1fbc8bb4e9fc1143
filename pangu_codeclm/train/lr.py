"""The reference's learning-rate schedule as plain numbers (no MindSpore): what the optimizer uses at each step.

text2code_mrpt's `get_cosine_schedule_with_warmup(opt, w, total, min_lr, init_lr)` (a torch `LambdaLR`), with
w = ceil(total x warmup_ratio) as transformers 4.19's `get_warmup_steps` computes it:

    lr(k) = learning_rate x k / max(1, w)                                             for k < w
    lr(k) = learning_rate x max(lr_end / learning_rate, 1/2 (1 + cos(pi p))),  p = (k - w) / max(1, total - w)

lr(k) is the rate of optimizer step k (0-based), so step 0 runs at 0, and the floor lr_end is reached at
p = 1 - arccos(2 lr_end / lr - 1) / pi (92% of the decay for lr_end = lr / 10), not only at the end.
The mindformers LR built on these values is `optim.FlooredCosineWithWarmUpLR`.
"""
import math

LR_TYPE = "FlooredCosineWithWarmUpLR"


def warmup_steps_for(total_steps, warmup_ratio):
    """ceil(total x ratio), the float product as transformers computes it (1000 x 0.01 -> 10, 137 x 0.01 -> 2)."""
    return math.ceil(total_steps * warmup_ratio)


def lr_values(learning_rate, total_steps, warmup_ratio=0.01, lr_end=0.0, warmup_steps=None):
    """The LR at optimizer steps 0..total_steps (total_steps + 1 Python floats, float64 as the reference)."""
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"lr_schedule.total_steps must be positive, got {total_steps}")
    if learning_rate <= 0:
        raise ValueError(f"lr_schedule.learning_rate must be positive, got {learning_rate}")
    if not 0 <= lr_end <= learning_rate:
        raise ValueError(f"lr_schedule.lr_end must be in [0, learning_rate={learning_rate}], got {lr_end}")
    if warmup_steps is None:
        if not 0 <= warmup_ratio <= 1:
            raise ValueError(f"lr_schedule.warmup_ratio must be in [0, 1], got {warmup_ratio}")
        warmup_steps = warmup_steps_for(total_steps, warmup_ratio)
    warmup_steps = int(warmup_steps)
    floor = lr_end / learning_rate

    def factor(step):
        if step < warmup_steps:
            return float(step) / float(max(1, warmup_steps))
        progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
        return max(floor, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return [learning_rate * factor(step) for step in range(total_steps + 1)]


def lr_values_from_config(lr_schedule, total_steps, where="lr_schedule"):
    """`lr_values` for a yaml `lr_schedule` section (a dict) of type FlooredCosineWithWarmUpLR."""
    kind = lr_schedule.get("type")
    if kind != LR_TYPE:
        raise ValueError(f"{where}.type is {kind!r}; the LR list can only be computed for {LR_TYPE}")
    known = {"type", "learning_rate", "lr_end", "warmup_ratio", "warmup_steps", "total_steps"}
    unknown = sorted(set(lr_schedule) - known)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key; {LR_TYPE} takes {sorted(known - {'type'})}")
    if "learning_rate" not in lr_schedule:
        raise ValueError(f"{where}.learning_rate: missing")
    return lr_values(float(lr_schedule["learning_rate"]), total_steps,
                     warmup_ratio=float(lr_schedule.get("warmup_ratio", 0.01)),
                     lr_end=float(lr_schedule.get("lr_end", 0.0)), warmup_steps=lr_schedule.get("warmup_steps"))
