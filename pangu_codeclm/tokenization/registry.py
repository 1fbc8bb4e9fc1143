"""The tokenizer kinds and the loader that picks one from a directory.

A new tokenizer is one module (a `base.Tokenizer`, usually a `sentencepiece_base.SentencePieceTokenizer` with its own
segmentation) and one line in `KINDS`. `load_tokenizer(dir)` reads tokenizer_config.json's "tokenizer_class" and hands
the directory to the kind whose class writes that name; a directory without that file or key is the released PanGu
layout (what a reference training run leaves: vocab.model and the map).
"""
import importlib
import os

from pangu_codeclm.io_utils import load_json
from pangu_codeclm.tokenization.base import TOKENIZER_CONFIG_FILE, TokenizerError

KINDS = {  # kind -> "module:Class"
    "pangu": "pangu_codeclm.tokenization.pangu:PanguTokenizer",
    "jieba": "pangu_codeclm.tokenization.jieba:JiebaTokenizer",
}
DEFAULT_KIND = "pangu"


def tokenizer_cls(kind):
    """The class registered as `kind`."""
    if kind not in KINDS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}; expected one of {', '.join(KINDS)}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def kind_of(directory):
    """The kind of a tokenizer directory, from tokenizer_config.json's "tokenizer_class" (see the module docstring)."""
    path = os.path.join(os.fspath(directory), TOKENIZER_CONFIG_FILE)
    if not os.path.isfile(path):
        return DEFAULT_KIND
    config = load_json(path, TokenizerError)
    if not isinstance(config, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    if "tokenizer_class" not in config:
        return DEFAULT_KIND
    written = config["tokenizer_class"]
    by_class = {tokenizer_cls(kind).tokenizer_class: kind for kind in KINDS}
    if written not in by_class:
        known = ", ".join(f"{name!r} (kind {kind})" for name, kind in by_class.items())
        raise TokenizerError(f"{path}: key 'tokenizer_class' is {written!r}, which no tokenizer kind reads; expected "
                             f"one of {known}")
    return by_class[written]


def load_tokenizer(directory, separation=None):
    """The tokenizer saved in `directory`, by the implementation its files name; `separation` is a hint for a
    directory that does not say (see `SentencePieceTokenizer.from_pretrained`)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tokenizer directory not found: {directory}")
    return tokenizer_cls(kind_of(directory)).from_pretrained(directory, separation=separation)
