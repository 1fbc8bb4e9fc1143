"""Start a run from a pretrained checkpoint (HF or MindSpore layout directory), growing the embedding for separation.

When the network has more vocabulary rows than the checkpoint (PanGu-Alpha 32013 → partial 32477 / full 64007), each new
row starts as a copy of its source row (map: old id → code-side id), rows without a source keep their random init, and
the `<pad>` row is zeroed.
"""
import logging

import numpy as np

logger = logging.getLogger(__name__)
WTE = "transformer.wte.weight"


def expand_embedding(wte, vocab_size, separation_map, pad_id, init=None):
    """[V0, E] → [vocab_size, E]: rows V0.. copied from their source (`separation_map` old→new), others from `init`."""
    old_rows, hidden = wte.shape
    if vocab_size < old_rows:
        raise ValueError(f"{WTE}: checkpoint has {old_rows} rows, more than the config's vocab_size {vocab_size}")
    out = np.array(init if init is not None else np.zeros((vocab_size, hidden), wte.dtype), dtype=wte.dtype)
    out[:old_rows] = wte
    for old, new in (separation_map or {}).items():
        if new >= old_rows and old < old_rows:
            out[new] = wte[old]
    if 0 <= pad_id < vocab_size:
        out[pad_id] = 0
    return out


def load_pretrained(network, path, separation_map=None, pad_id=None):
    """Copy the weights of checkpoint directory `path` into `network` (expanding the embedding if needed)."""
    from ..api import load_weights_into
    from ..convert import hf
    ckpt = hf.read_checkpoint(path)
    weights = dict(ckpt.weights)
    params = {p.name: p for p in network.get_parameters()}
    if WTE in weights and WTE in params and weights[WTE].shape[0] != params[WTE].shape[0]:
        before = weights[WTE].shape[0]
        weights[WTE] = expand_embedding(weights[WTE], params[WTE].shape[0], separation_map,
                                        -1 if pad_id is None else pad_id, init=params[WTE].asnumpy())
        logger.info("expanded %s from %d to %d rows for separation", WTE, before, weights[WTE].shape[0])
    load_weights_into(network, weights, path)
    logger.info("loaded pretrained weights from %s (%d tensors)", path, len(weights))
