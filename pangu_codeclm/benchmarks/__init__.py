"""The benchmark registry: every benchmark the CLI, the harness, the canonical gate and decontamination know.

To add one: write a module here with a `Benchmark` subclass (see `base.py`) and list its instance in `REGISTRY`.
"""
from .base import HUMAN_EVAL, MODES, Benchmark
from .humaneval import HUMANEVAL
from .mbpp import MBPP
from .mbpp_sanitized import MBPP_SANITIZED

REGISTRY = {b.name: b for b in (HUMANEVAL, MBPP, MBPP_SANITIZED)}
NAMES = tuple(REGISTRY)
SPLITS = tuple(dict.fromkeys(s for b in REGISTRY.values() for s in b.splits))  # every benchmark's, for --split


def get(name):
    """The benchmark called `name`; ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}") from None


def of(problem):
    """The benchmark a problem dict comes from (its `dataset`)."""
    return get(problem["dataset"])


__all__ = ["Benchmark", "HUMAN_EVAL", "MODES", "NAMES", "REGISTRY", "SPLITS", "get", "of"]
