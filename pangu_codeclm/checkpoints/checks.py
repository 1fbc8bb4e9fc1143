"""Checks shared by every format: weights against the family's layout, the separation map against the config, and
what a writer needs before it writes anything. Nothing is returned (so nothing is loaded) unless every check passes."""
import os
import re

import numpy as np

from ..families import family_for
from ..io_utils import load_int_map_pickle, save_int_map_pickle
from ..separation import modality_vocab_masks
from ..tokenization.base import SEPARATION_MAP_FILE, VOCAB_FILE
from .base import check_tokenizer_vocab
from .errors import CheckpointError
from .tensors import NP_DTYPES, ArrayTensors, LazyWeights, TensorFile

# Buffers of the released checkpoints, rebuilt (never loaded, never exported): attention masks, vocabulary masks.
_IGNORED = re.compile(r"(^|\.)attn\.(bias|masked_bias)$|^(code_tokens_mask|doc_tokens_mask)$")
TIED_HEAD = "lm_head.weight"


def is_ignored_buffer(name):
    """True for the released checkpoints' buffers that are rebuilt, never loaded (attention masks, vocab masks)."""
    return bool(_IGNORED.search(name))


def check_weights(raw, config, source):
    """Drop the known buffers, check keys and shapes against the config's family layout, cast to its param dtype.

    `raw` is a dict of arrays (checked and cast at once: a dict back) or a `TensorFile` (checked from its header, no
    tensor read: a `LazyWeights` back, each tensor read and cast when accessed).
    Raises CheckpointError naming `source`, the key, the expected and the found shape.
    """
    tensors = raw if isinstance(raw, TensorFile) else ArrayTensors(raw)
    names = []
    for name in tensors.names:
        if is_ignored_buffer(name):
            continue
        if name == TIED_HEAD:
            _check_tied_head(tensors, source)
            continue
        names.append(name)
    expected = family_for(config).shapes(config)
    missing = [k for k in expected if k not in names]
    if missing:
        raise CheckpointError(f"{source}: missing parameter '{missing[0]}' (expected shape {expected[missing[0]]})"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    unexpected = sorted(k for k in names if k not in expected)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected parameter '{unexpected[0]}' with shape "
                              f"{tensors.shape(unexpected[0])}"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    for name, shape in expected.items():
        if tensors.shape(name) != shape:
            raise CheckpointError(f"{source}: parameter '{name}' has shape {tensors.shape(name)}, expected {shape}")
        if not tensors.is_float(name):
            raise CheckpointError(f"{source}: parameter '{name}' has dtype {tensors.dtype_name(name)}, expected a "
                                  f"float tensor")
    weights = LazyWeights(tensors, list(expected), NP_DTYPES.get(config.param_init_type, np.float32))
    return weights if isinstance(raw, TensorFile) else dict(weights.items())


def _check_tied_head(tensors, source):
    wte = "transformer.wte.weight"
    if wte in tensors.names and (tensors.shape(TIED_HEAD) == tensors.shape(wte)
                                 and np.array_equal(tensors.read(TIED_HEAD), tensors.read(wte))):
        return
    raise CheckpointError(f"{source}: '{TIED_HEAD}' differs from '{wte}'; the model ties its output head to the "
                          f"embedding")


def check_map_against_config(mapping, config, where, map_name=SEPARATION_MAP_FILE, absent=False):
    """CheckpointError (`where`: ...) naming the map and the config's separation unless they agree: a map exactly
    when separated, every id inside the config's vocabulary."""
    if not mapping and config.separation != "none":
        raise CheckpointError(f"{where}: the config says separation '{config.separation}' but {map_name} is "
                              f"{'missing' if absent else 'empty'}")
    if mapping and config.separation == "none":
        raise CheckpointError(f"{where}: {map_name} has {len(mapping)} separated tokens but the config says "
                              f"separation 'none'")
    try:
        modality_vocab_masks(mapping, config.vocab_size)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {map_name}: {exc}") from None


def read_separation_map(directory, config):
    """The map from replicated_tokens_map.pkl ({} when absent), checked against the config."""
    path = os.path.join(directory, SEPARATION_MAP_FILE)
    present = os.path.isfile(path)
    mapping = load_int_map_pickle(path) if present else {}
    check_map_against_config(mapping, config, directory, absent=not present)
    return mapping


def tokenizer_dir(directory):
    """`directory` when it holds a tokenizer (vocab.model), else None."""
    return directory if directory and os.path.isfile(os.path.join(directory, VOCAB_FILE)) else None


def checked_for_writing(config, weights, separation_map, tokenizer):
    """fp32 weights after the shape checks; the tokenizer must agree with the map and the vocabulary size."""
    if tokenizer is not None:
        if dict(tokenizer.separation_map) != dict(separation_map or {}):
            raise CheckpointError(f"the tokenizer's separation map ({len(tokenizer.separation_map)} entries) differs "
                                  f"from the model's ({len(separation_map or {})} entries)")
        check_tokenizer_vocab(tokenizer, config, "tokenizer to write")
    check_map_against_config(separation_map or {}, config, "checkpoint to write", "its separation map")
    weights = {k: np.asarray(v) for k, v in weights.items()}
    return check_weights(weights, config.replace(param_init_type="float32"), "weights to write")


def write_tokenizer_files(directory, separation_map, tokenizer):
    """The map (when separated) and the tokenizer files, beside the weights."""
    if separation_map:
        save_int_map_pickle(os.path.join(directory, SEPARATION_MAP_FILE), separation_map)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
