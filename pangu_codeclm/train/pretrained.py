"""Start a run from a pretrained checkpoint (any format of `pangu_codeclm.checkpoints`: an HF or MindSpore layout
directory, a model-zoo PanGu-Alpha .ckpt), growing the embedding for separation.

As the reference (`lm_trainer.py`): the embedding is resized to the tokenizer (new rows keep the network's random
init), then every separation-map entry copies its source row to its target row — a code-side twin of a base token
gets the pretrained row, and a token new to the vocabulary (map: its new text id -> its `[_DUP_]` id) gets its twin
set equal to its own fresh row — and finally the `<pad>` row is zeroed, whether or not the embedding grew.
"""
import logging

import numpy as np

logger = logging.getLogger(__name__)
WTE = "transformer.wte.weight"


def expand_embedding(wte, vocab_size, separation_map, pad_id, init=None):
    """[V0, E] → [vocab_size, E]: rows V0.. from `init` (zeros without it), then out[new] = out[old] for every map
    entry (old→new, in map order) and out[pad_id] = 0."""
    old_rows, hidden = wte.shape
    if vocab_size < old_rows:
        raise ValueError(f"{WTE}: checkpoint has {old_rows} rows, more than the config's vocab_size {vocab_size}")
    out = np.array(init if init is not None else np.zeros((vocab_size, hidden), wte.dtype), dtype=wte.dtype)
    out[:old_rows] = wte
    for old, new in (separation_map or {}).items():
        if not (0 <= old < vocab_size and 0 <= new < vocab_size):
            raise ValueError(f"separation map entry {old} -> {new} is outside the {vocab_size}-row embedding")
        out[new] = out[old]
    if 0 <= pad_id < vocab_size:
        out[pad_id] = 0
    return out


# Keys a pretrained checkpoint must share with the run's network (the vocabulary may grow for separation).
ARCHITECTURE_KEYS = ("hidden_size", "num_layers", "num_heads", "ffn_hidden_size", "max_position_embeddings",
                     "activation")


def load_pretrained(network, path, separation_map=None, pad_id=None, **read_options):
    """Copy the weights of checkpoint `path` into `network` (expanding the embedding; `<pad>` zeroed); `read_options`
    go to the format's reader. A format whose reader builds the config from options (a model-zoo file: its shapes do
    not say the number of heads) gets `num_heads` from the network's config unless given. The checkpoint's
    architecture must be the network's: a ValueError names the first key that differs."""
    from ..checkpoints import FORMATS, detect_format, load_weights_into, read_checkpoint
    fmt = FORMATS[detect_format(path)]
    if fmt.config_from_options:
        read_options.setdefault("num_heads", network.config.num_heads)
    ckpt = read_checkpoint(path, format=fmt.name, **read_options)
    for key in ARCHITECTURE_KEYS:
        if getattr(ckpt.config, key) != getattr(network.config, key):
            raise ValueError(f"{path}: the pretrained {fmt.name} checkpoint has {key}={getattr(ckpt.config, key)!r} "
                             f"but the run's model_config.{key} is {getattr(network.config, key)!r}")
    weights = dict(ckpt.weights)
    params = {p.name: p for p in network.get_parameters()}
    if WTE in weights and WTE in params:
        before = weights[WTE].shape[0]
        grow = before != params[WTE].shape[0]
        weights[WTE] = expand_embedding(weights[WTE], params[WTE].shape[0], separation_map if grow else None,
                                        -1 if pad_id is None else pad_id,
                                        init=params[WTE].asnumpy() if grow else None)
        if grow:
            logger.info("expanded %s from %d to %d rows for separation", WTE, before, weights[WTE].shape[0])
    load_weights_into(network, weights, path)
    logger.info("loaded pretrained weights from %s (%s, %d tensors)", path, fmt.name, len(weights))
