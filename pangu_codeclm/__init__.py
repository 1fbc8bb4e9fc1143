"""pangu-codeclm: a MindSpore reproduction of pangu-CodeCLM (text-to-code with modality-relative pre-training)."""

__version__ = "0.1.0"


def from_pretrained(path, device_target="CPU", **kwargs):
    """Load an HF-layout or MindSpore-layout checkpoint directory; see `pangu_codeclm.api.from_pretrained`."""
    from .api import from_pretrained as _from_pretrained
    return _from_pretrained(path, device_target=device_target, **kwargs)


__all__ = ["from_pretrained", "__version__"]
