"""Training checkpoints: atomic save, keep-last-K, integrity check and resume point discovery.

A checkpoint is a pair in `<output_dir>/checkpoint/rank_<r>/`:
  `step_<N>.ckpt`  every parameter of the train-one-step cell: weights, optimizer moments, `global_step`, loss scale;
  `step_<N>.json`  written last (its presence marks the pair complete): step, data position (global rows consumed),
                   RNG states, and the size and SHA-256 of the .ckpt.
Both are written under a temporary name and renamed, so a kill leaves either a complete pair or a stray that is skipped.
"""
import logging
import os
import random
import re

import numpy as np

from ..io_utils import atomic_path, atomic_write_json, file_sha256, load_json

logger = logging.getLogger(__name__)
_NAME = re.compile(r"^step_(\d+)\.json$")
FORMAT_VERSION = 1


def rank_dir(output_dir, rank_id=0):
    return os.path.join(os.fspath(output_dir), "checkpoint", f"rank_{rank_id}")


def ckpt_path(meta_path):
    """The .ckpt file of the pair whose metadata file is `meta_path`."""
    return meta_path[:-len(".json")] + ".ckpt"


def capture_rng_state():
    """Host RNG states (python, numpy, MindSpore default generator) as JSON-serializable data."""
    import mindspore as ms
    np_state = np.random.get_state()
    state = {
        "python": repr(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    try:
        state["mindspore"] = ms.get_rng_state().asnumpy().tolist()
    except Exception:  # pragma: no cover - older MindSpore without a default generator
        state["mindspore"] = None
    return state


def restore_rng_state(state):
    import ast
    import mindspore as ms
    random.setstate(_to_tuple(ast.literal_eval(state["python"])))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if state.get("mindspore") is not None:
        ms.set_rng_state(ms.Tensor(np.asarray(state["mindspore"], dtype=np.uint8)))


def _to_tuple(obj):
    return tuple(_to_tuple(x) for x in obj) if isinstance(obj, (list, tuple)) else obj


def save_checkpoint(cell, directory, step, extra=None, keep=None):
    """Save `cell`'s parameters and the resume metadata for `step` atomically; keep only the newest `keep` pairs."""
    import mindspore as ms
    os.makedirs(directory, exist_ok=True)
    ckpt = os.path.join(directory, f"step_{step:08d}.ckpt")
    meta = os.path.join(directory, f"step_{step:08d}.json")
    with atomic_path(ckpt) as tmp:
        ms.save_checkpoint(cell, tmp + ".ckpt")  # MindSpore insists on the .ckpt suffix
        os.replace(tmp + ".ckpt", tmp)
    info = {"format_version": FORMAT_VERSION, "step": int(step), "ckpt": os.path.basename(ckpt),
            "size": os.path.getsize(ckpt), "sha256": file_sha256(ckpt), "rng": capture_rng_state()}
    info.update(extra or {})
    atomic_write_json(meta, info)
    if keep:
        prune(directory, keep)
    return ckpt


def list_checkpoints(directory):
    """(step, meta_path) of every metadata file in `directory`, newest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found, reverse=True)


def prune(directory, keep):
    """Delete all but the newest `keep` checkpoints (metadata first, so a half-deleted pair reads as incomplete)."""
    for _, meta in list_checkpoints(directory)[keep:]:
        for path in (meta, ckpt_path(meta)):
            if os.path.exists(path):
                os.remove(path)


def verify(meta_path):
    """Return the metadata dict of a complete, intact checkpoint; raise ValueError naming the bad file otherwise."""
    info = load_json(meta_path, what="checkpoint metadata")
    for key in ("step", "ckpt", "size", "sha256", "rng"):
        if key not in info:
            raise ValueError(f"{meta_path}: checkpoint metadata lacks key '{key}'")
    ckpt = os.path.join(os.path.dirname(meta_path), info["ckpt"])
    if not os.path.isfile(ckpt):
        raise ValueError(f"{ckpt}: missing (metadata {meta_path} refers to it)")
    size = os.path.getsize(ckpt)
    if size != info["size"]:
        raise ValueError(f"{ckpt}: truncated or altered ({size} bytes, expected {info['size']})")
    if file_sha256(ckpt) != info["sha256"]:
        raise ValueError(f"{ckpt}: corrupt (SHA-256 does not match {meta_path})")
    info["ckpt_path"] = ckpt
    return info


def intact_steps(directory):
    """Steps whose checkpoint in `directory` passes `verify` (quietly)."""
    good = set()
    for step, meta in list_checkpoints(directory):
        try:
            verify(meta)
            good.add(step)
        except ValueError:
            pass
    return good


def find_resume_checkpoint(directory, peers=()):
    """Metadata of the newest intact checkpoint in `directory` (None if there is none); bad ones are warned and skipped.

    `peers` are the other ranks' checkpoint directories visible from here: a step is used only if it is intact in all
    of them too, so data-parallel ranks resume from the same step.
    """
    peer_steps = [(peer, intact_steps(peer)) for peer in peers]
    stray = _stray_checkpoints(directory)
    for path in stray:
        logger.warning("skipping incomplete checkpoint %s (no metadata: the run stopped while saving it)", path)
    for path in _temp_files(directory):
        logger.warning("removing temporary file %s left by an interrupted save", path)
        os.remove(path)
    for step, meta in list_checkpoints(directory):
        try:
            info = verify(meta)
        except ValueError as exc:
            logger.warning("skipping checkpoint at step %d: %s", step, exc)
            continue
        missing = [peer for peer, steps in peer_steps if step not in steps]
        if missing:
            logger.warning("skipping checkpoint at step %d: not intact in %s", step, ", ".join(missing))
            continue
        logger.info("resuming from %s (step %d)", info["ckpt_path"], info["step"])
        return info
    return None


def _stray_checkpoints(directory):
    if not os.path.isdir(directory):
        return []
    names = set(os.listdir(directory))
    return sorted(os.path.join(directory, n) for n in names
                  if n.endswith(".ckpt") and n[:-5] + ".json" not in names)


def _temp_files(directory):
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.startswith(".step_") and ".tmp" in n)


def load_into(cell, info):
    """Load an intact checkpoint's parameters into `cell` (strict: every checkpoint tensor must find its parameter)."""
    import mindspore as ms
    params = ms.load_checkpoint(info["ckpt_path"])
    not_loaded, unused = ms.load_param_into_net(cell, params, strict_load=True)
    if unused:
        raise ValueError(f"{info['ckpt_path']}: tensors not in the network: {sorted(unused)[:5]}")
    missing = [n for n in not_loaded if not n.startswith(("accu_grads", "zeros"))]
    if missing:
        raise ValueError(f"{info['ckpt_path']}: lacks parameters {missing[:5]}")
    return params
