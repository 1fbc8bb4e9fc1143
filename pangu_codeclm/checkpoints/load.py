"""Checked weights into a network and back: the network's checkpoint parameters are those of its family's layout;
anything else it holds (the vocabulary masks rebuilt from the separation map) is never read from or written to a
checkpoint."""
from ..families import family_for
from .errors import CheckpointError
from .tensors import weight_shape


def checkpoint_parameters(network):
    """{name: Parameter} of the network's parameters that a checkpoint holds (its family's layout, by name)."""
    if getattr(network, "strip_layout", False):  # a decoder's strip order (model/pangu.py): back to [in, out]
        network.set_strip_layout(False)
    layout = family_for(network.config).shapes(network.config)
    return {p.name: p for p in network.get_parameters() if p.name in layout}


def load_weights_into(network, weights, source):
    """Copy numpy `weights` into `network` by name after checking every name and shape (nothing copied on error).

    Every checkpoint parameter of the network must be present in `weights` and vice versa; the rest of the network
    (the vocabulary masks, set from the separation map) is left alone.
    """
    import mindspore as ms
    trainable = checkpoint_parameters(network)
    missing = sorted(set(trainable) - set(weights))
    unexpected = sorted(set(weights) - set(trainable))
    if missing or unexpected:
        raise CheckpointError(f"{source}: network and checkpoint disagree: missing in the checkpoint "
                              f"{missing[:3]}, not in the network {unexpected[:3]}")
    for name, param in trainable.items():
        if tuple(param.shape) != weight_shape(weights, name):  # lazy weights: no tensor read yet
            raise CheckpointError(f"{source}: parameter '{name}' has shape {weight_shape(weights, name)}, the "
                                  f"network expects {tuple(param.shape)}")
    for name, param in trainable.items():
        param.set_data(ms.Tensor(weights[name], dtype=param.dtype))
