"""MindSpore checkpoint files (`.ckpt` protobuf or `.safetensors`, as `mindspore.save_checkpoint` writes them): the
parameter names without the data, and the parameters as numpy arrays. Optimizer moments, step counters and loss scale
of a train cell's checkpoint are recognised by `is_training_state`."""
import os
import re

from .errors import CheckpointError
from .files import CHECKPOINT_SUFFIXES
from .tensors import SafetensorsFile

_OPTIMIZER_STATE = re.compile(r"(^|\.)(adam_m|adam_v|moment1|moment2|moments|accum|accu_grads|exp_avg|exp_avg_sq|"
                              r"accumulation)(\.|$)")
_COUNTERS = re.compile(r"(^|\.)(global_step|current_iterator_step|last_overflow_iterator_step|epoch_num|step_num|"
                       r"loss_scale|scale_sense|learning_rate|beta1_power|beta2_power)$")


def is_checkpoint_file(path):
    return os.path.isfile(path) and path.endswith(CHECKPOINT_SUFFIXES)


def is_training_state(name):
    """True for a train cell's entries that are not model weights (optimizer moments, counters, loss scale)."""
    return bool(_OPTIMIZER_STATE.search(name) or _COUNTERS.search(name))


def _format(path):
    return "safetensors" if path.endswith(".safetensors") else "ckpt"


def parameter_names(path):
    """The parameter names of a checkpoint file (a .ckpt is parsed, but only its first tensor is kept)."""
    if _format(path) == "safetensors":
        return list(SafetensorsFile(path).names)
    import mindspore as ms
    names = []

    def keep_first(name):
        names.append(name)
        return len(names) == 1

    try:
        ms.load_checkpoint(path, choice_func=keep_first)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError for corrupt files
        raise CheckpointError(f"{path}: cannot read MindSpore checkpoint ({type(exc).__name__}: {exc})") from None
    return names


def load_parameters(path):
    """{name: numpy array} of every entry of a checkpoint file (bfloat16 read as float32)."""
    import mindspore as ms
    try:
        params = ms.load_checkpoint(path, format=_format(path))
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError for corrupt files
        raise CheckpointError(f"{path}: cannot read MindSpore checkpoint ({type(exc).__name__}: {exc})") from None
    return {name: (t.astype(ms.float32) if t.dtype == ms.bfloat16 else t).asnumpy() for name, t in params.items()}
