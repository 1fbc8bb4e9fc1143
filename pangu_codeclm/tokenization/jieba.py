"""PanGu-Alpha's tokenizer (kind "jieba"): jieba words, then SentencePiece.

Behaviour as `JIEBATokenizer` in mindspore-ai/models, official/nlp/Pangu_alpha/src/tokenization_jieba.py (studied,
not copied): a chunk of text is cut into words by jieba (`cut_all=False`, HMM on), each word's spaces become U+2582
and its newlines U+2583, the words are joined by single spaces and SentencePiece encodes the result; decoding is
SentencePiece's decode, the joining spaces removed, U+2582 -> ' ' and U+2583 -> '\\n'. `<eod>`, `<eot>`, `<pad>` are
pieces of the model (read from it, never added); the other CodeCLM specials are added after the pieces when the model
lacks them, special tokens in a text are split out before jieba sees it, and separation works as on any vocabulary
(`sentencepiece_base`).

jieba is imported and its dictionary loaded on first use, quietly, with its cache in a private directory under the
system temp dir (the cache is a marshal file: a shared, writable location would let others plant one).
"""
import logging
import os
import stat
import tempfile
import threading

from pangu_codeclm.tokenization.sentencepiece_base import (RECIPE_DEFAULTS, SPECIAL_SPLIT, SentencePieceTokenizer,
                                                           direct_encoder)

SPACE = "\u2582"
NEWLINE = "\u2583"
_VISIBLE = str.maketrans(" \n", SPACE + NEWLINE)

_segmenter = None
_segmenter_lock = threading.Lock()


def _cache_dir():
    """A directory for jieba's cache only this user can write: <tmp>/pangu-codeclm-jieba-<uid>, else a fresh one."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"pangu-codeclm-jieba-{uid if uid is not None else 'user'}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o022:
            return path
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="pangu-codeclm-jieba-")


def segmenter():
    """jieba's default-dictionary segmenter, initialised once (quietly; cache in `_cache_dir()`)."""
    global _segmenter
    if _segmenter is None:
        with _segmenter_lock:
            if _segmenter is None:
                import jieba

                logging.getLogger("jieba").setLevel(logging.WARNING)  # jieba logs its dictionary loading to stderr
                tok = jieba.Tokenizer()
                tok.tmp_dir = _cache_dir()
                tok.initialize()
                _segmenter = tok
    return _segmenter


def join_words(text):
    """What SentencePiece sees of a chunk: jieba's words, spaces and newlines made visible, joined by single spaces."""
    return " ".join(word.translate(_VISIBLE) for word in segmenter().cut(text, cut_all=False))


def restore_text(text):
    """The inverse of `join_words` on SentencePiece's decoded text."""
    return text.replace(" ", "").replace(SPACE, " ").replace(NEWLINE, "\n")


class JiebaTokenizer(SentencePieceTokenizer):
    """PanGu-Alpha's jieba + SentencePiece tokenizer with the CodeCLM specials and separation."""

    kind = "jieba"
    tokenizer_class = "JIEBATokenizer"
    required_pieces = ("<eod>", "<eot>", "<pad>")
    # the model-zoo vocabulary has the three specials as pieces; identity normalisation keeps full-width text as is
    sentencepiece_recipe = dict(RECIPE_DEFAULTS, user_defined_symbols=list(required_pieces),
                                normalization_rule_name="identity")

    def _make_segmenter(self):
        encode = direct_encoder(self._sp)
        return lambda chunk: encode(join_words(chunk))

    def _decode_pieces(self, ids):
        return restore_text(self._sp.decode(ids))

    def _config_json(self):
        return {"tokenizer_class": self.tokenizer_class}

    @classmethod
    def training_sentences(cls, text):
        """SentencePiece's training input: each chunk between special tokens, as `encode` segments it."""
        for chunk in SPECIAL_SPLIT.split(text)[::2]:
            chunk = chunk.strip()
            if chunk:
                yield join_words(chunk)
