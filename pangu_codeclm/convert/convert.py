"""Convert a checkpoint from any readable format to any writable one (`pangu_codeclm.checkpoints` does the IO)."""
import inspect
import os

from ..checkpoints import FORMATS, detect_format, read_checkpoint, write_checkpoint, writable_formats


def _named_parameters(fn):
    return {name for name, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _options_for(fn, options, what, fmt):
    """The options that are set, refused with a clear error when `fn` (a reader or writer) does not take them."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    unknown = sorted(set(given) - _named_parameters(fn))
    if unknown:
        raise ValueError(f"option {unknown[0]!r} does not apply to {what} a {fmt} checkpoint")
    return given


def convert(src, dst, to, overwrite=False, config=None, aux_dir=None, num_heads=None, activation=None,
            write_bin=False, bin_dtype=None, variant=None, dtype=None):
    """Convert `src` (a checkpoint directory or file of any registered format, detected) to format `to` in `dst`.

    Reader options: `config` and `aux_dir` for a training checkpoint file (`aux_dir`: the tokenizer directory with
    the separation map; defaults to `config` when that is a directory), `aux_dir`, `num_heads` and `activation` for a
    model-zoo file. Writer options: `write_bin`, `bin_dtype` (hf), `variant`, `dtype` (modelzoo).
    Returns the Checkpoint that was read."""
    if to not in writable_formats():
        raise ValueError(f"unknown layout {to!r}; expected one of {', '.join(repr(f) for f in writable_formats())}")
    fmt = detect_format(src)
    reader, writer = FORMATS[fmt].read, FORMATS[to].write
    read_options = _options_for(reader, dict(config=config, aux_dir=aux_dir, num_heads=num_heads,
                                             activation=activation), "reading", fmt)
    write_options = _options_for(writer, dict(write_bin=write_bin, bin_dtype=bin_dtype, variant=variant,
                                              dtype=dtype), "writing", to)
    ckpt = read_checkpoint(os.fspath(src), format=fmt, **read_options)
    write_checkpoint(dst, to, ckpt.config, ckpt.weights, ckpt.separation_map, ckpt.load_tokenizer(),
                     overwrite=overwrite, **write_options)
    return ckpt
