"""Model families: the one place each family's parameter layout lives.

A family names its `model_type`, its config and network classes (imported only when asked for), its architecture
presets and its parameter layout (HF key, shape, initial centre, part). Checkpoint shapes, random test weights,
parameter counts, the memory plans and the number of KV-cached layers are all derived from the layout, so adding a
backbone is one module here plus `register(...)`.
"""
import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PARTS = ("embedding", "block", "top", "final")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: HF checkpoint key, shape, the value its random init is centred on, and the part it belongs to
    (`embedding`, `block` (an ordinary block, `index` set), `top` (the top query layer) or `final`)."""
    name: str
    shape: tuple
    centre: float = 0.0
    part: str = "block"
    index: int = -1

    @property
    def size(self):
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ModelFamily:
    """A decoder family; `layout(config)` is the list of its `ParameterSpec`s in checkpoint order."""
    model_type: str
    config_class_path: str
    network_class_path: str
    layout_fn: object
    cached_layers_fn: object
    architectures: dict = field(default_factory=dict)

    # -------------------------------------------------------------- classes, resolved lazily (mindspore is heavy)
    @staticmethod
    def _resolve(path):
        module, name = path.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def config_class(self):
        return self._resolve(self.config_class_path)

    @property
    def network_class(self):
        return self._resolve(self.network_class_path)

    def build_network(self, config, separation_map=None):
        return self.network_class(config, separation_map=separation_map)

    # -------------------------------------------------------------- everything derived from the layout
    def layout(self, config):
        return self.layout_fn(config)

    def shapes(self, config):
        """{HF key: shape} of every parameter of a model with this config."""
        return {p.name: tuple(p.shape) for p in self.layout(config)}

    def parameter_count(self, config, part=None):
        """Parameters of the whole model, or of one part (`block` counts one ordinary block)."""
        specs = self.layout(config)
        if part is None:
            return sum(p.size for p in specs)
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        if part == "block":
            specs = [p for p in specs if p.part == "block" and p.index == 0]
        return sum(p.size for p in specs if p.part == part)

    def cached_layers(self, config):
        """How many layers hold a K/V cache during incremental decoding."""
        return self.cached_layers_fn(config)

    def random_weights(self, config, seed=0, std=0.02):
        """Random float32 numpy weights under the HF keys (centre + std * N(0, 1)), for tests and demos."""
        rng = np.random.default_rng(seed)
        return {p.name: (p.centre + std * rng.standard_normal(p.shape)).astype(np.float32)
                for p in self.layout(config)}


class IncrementalDecoderNetwork(Protocol):
    """What `infer.generate` needs of a family's network: K/V caches are tuples of `num_cached_layers` Parameters
    [B*heads, L, head_dim] (row b*heads + h: head h of batch row b)."""
    num_cached_layers: int

    def prefill(self, input_ids, position_ids, attention_mask, prefix_index, k_caches, v_caches, cache_index):
        """Left-padded prompts [B,P]: set the cache rows `cache_index` [B*heads] to their P slots (zeros after
        them), return the last position's logits [B,V]."""

    def decode(self, input_ids, position_ids, valid, write_slots, write_onehot, k_caches, v_caches):
        """One token per row [B,1], its K/V added at its cache rows' slot among the distinct slots `write_slots` [S]
        (`write_onehot` [B*heads, S, 1]: 1 where cache row b*heads + h meets the slot of batch row b and that row
        writes), attending the first W slots marked in `valid` [B,W]: logits [B,V]."""


FAMILIES = {}


def register(family):
    """Add a family; its `model_type` must be new."""
    if family.model_type in FAMILIES:
        raise ValueError(f"model family {family.model_type!r} is already registered")
    FAMILIES[family.model_type] = family
    return family


def family_for(config_or_type):
    """The family of a config (by its `model_type`) or of a model_type string."""
    model_type = config_or_type if isinstance(config_or_type, str) else getattr(config_or_type, "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(f"unknown model_type {model_type!r}; registered families: {sorted(FAMILIES)}")
    return FAMILIES[model_type]


from . import pangu_alpha  # noqa: E402,F401  (registers the built-in family)
