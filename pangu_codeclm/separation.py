"""Modality vocabularies of a separated embedding layer, derived from the separation map.

The map sends a text-side id (old) to its code-side twin (new). Code side = map values + shared ids; text side = map keys
+ shared ids; shared = every id that is neither a key nor a value. An empty map restricts nothing.
"""
import numpy as np

SEPARATIONS = ("none", "partial", "full")  # the embedding separations: none, partial (Python tokens), full


def modality_vocab_masks(separation_map, vocab_size):
    """Return (code_mask, text_mask), float32 arrays [vocab_size] with 1 where an id belongs to that modality."""
    code = np.ones(vocab_size, dtype=np.float32)
    text = np.ones(vocab_size, dtype=np.float32)
    if not separation_map:
        return code, text
    keys = np.fromiter(separation_map.keys(), dtype=np.int64)
    values = np.fromiter(separation_map.values(), dtype=np.int64)
    for name, ids in (("key", keys), ("value", values)):
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        if bad.size:
            raise ValueError(f"separation map {name} {int(bad[0])} is outside the vocabulary [0, {vocab_size})")
    code[keys] = 0.0   # text-only ids are not code-side
    text[values] = 0.0  # code-only ids are not text-side
    return code, text


def is_restricted(separation_map):
    """True when the map separates the modalities (non-empty)."""
    return bool(separation_map)
