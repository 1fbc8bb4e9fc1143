"""The settings of an evaluation run (everything that decides its numbers, recorded in summary.json)."""
import dataclasses

from ..infer.generate import PREFIX_LM_SETTINGS
from .. import benchmarks


class EvaluationError(RuntimeError):
    """A run that cannot produce a trustworthy score (bad input, failed canonical check, mismatched resume)."""


@dataclasses.dataclass
class Settings:
    """Everything that decides a run's numbers (recorded in summary.json). `mode` and `split` None: the dataset's
    default (its benchmark's first mode: paper where it has one; its default split), filled in by `validate`."""
    dataset: str = benchmarks.NAMES[0]
    mode: str = None
    incremental: bool = False
    n_samples: int = 1
    greedy: bool = True
    temperature: float = 0.95
    top_p: float = 0.8
    top_k: int = 0
    batch_size: int = 16
    max_length: int = 1024
    max_new_tokens: int = 1024
    seed: int = 1234
    limit: int = 0
    workers: int = 4
    timeout: float = 5.0
    ks: tuple = (1, 10, 100)
    split: str = None
    mbpp_path: str = None  # the dataset's file, for benchmarks read from google-research/mbpp
    prefix_lm: str = "auto"  # Prefix Code CLM prefix at inference: auto (the model's objective), on, off

    @property
    def benchmark(self):
        try:
            return benchmarks.get(self.dataset)
        except ValueError as exc:
            raise EvaluationError(f"dataset: {exc}") from None

    def validate(self):
        benchmark = self.benchmark
        self.mode = self.mode or benchmark.modes[0]
        if self.mode not in benchmarks.MODES:
            raise EvaluationError(f"mode: expected one of {benchmarks.MODES}, got {self.mode!r}")
        try:
            benchmark.check_mode(self.mode)
            self.split = benchmark.check_split(self.split)
        except ValueError as exc:
            raise EvaluationError(str(exc)) from None
        for name in ("n_samples", "batch_size", "max_length", "max_new_tokens", "workers"):
            if getattr(self, name) < 1:
                raise EvaluationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.greedy and self.n_samples != 1:
            raise EvaluationError(f"greedy decoding gives one sample per task; got n_samples={self.n_samples}")
        if not self.greedy and not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise EvaluationError("sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0")
        if self.timeout <= 0:
            raise EvaluationError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.prefix_lm not in PREFIX_LM_SETTINGS:
            raise EvaluationError(f"prefix_lm: expected one of {PREFIX_LM_SETTINGS}, got {self.prefix_lm!r}")
        return self

    def generation_key(self):
        """The settings a resumed run must share with the run that wrote samples.jsonl."""
        keys = ("dataset", "mode", "incremental", "n_samples", "greedy", "temperature", "top_p", "top_k",
                "max_length", "max_new_tokens", "seed", "split", "prefix_lm")
        return {k: getattr(self, k) for k in keys}
