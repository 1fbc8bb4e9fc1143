"""What every SentencePiece-based tokenizer shares: added specials, separation twins, special-token splitting, the
directory layout. A subclass supplies only the segmentation of a chunk of plain text and the detokenization of a run
of pieces (`_make_segmenter`, `_decode_pieces`) and its tokenizer_config.json (`_config_json`).

- the SentencePiece pieces keep their ids; the specials are added after them, except those already pieces (the
  released PanGu model has `<NEW_LINE> <INDENT> <DEDENT>` at 3/4/5, so `<eod>`=32000 … `<mask>`=32012);
- text is first split on every special and added token (leftmost-longest match, anywhere in the text), the whitespace
  next to each such token is stripped, and each remaining chunk is segmented on its own;
- separation (none / partial / full) appends `[_DUP_]t` twins as ../shared/DESIGN.md describes, on any vocabulary;
  those and any new `t` are added tokens too, so they also split the text.

Decoding maps code-side ids back to their text-side twins, detokenizes each run of pieces, and puts one space around
each special and marker; an added word-like token gets a space only next to another word character, an added operator
one on each side (the encoder dropped that whitespace, as the reference does).
"""
import json
import logging
import os
import re

from pangu_codeclm.io_utils import (atomic_write_bytes, atomic_write_text, load_int_map_pickle, load_json,
                                    save_int_map_pickle)
from pangu_codeclm.separation import SEPARATIONS
from pangu_codeclm.tokenization.base import (ADDED_TOKENS_FILE, BASE_SPECIAL_TOKENS, DUP_PREFIX, MARKERS,
                                             SEPARATION_MAP_FILE, SPECIAL_TOKENS, SPECIAL_TOKENS_MAP_FILE,
                                             SPIECE_UNDERLINE, TOKENIZER_CONFIG_FILE, VOCAB_FILE, Tokenizer,
                                             TokenizerError)

DEFAULT_PARTIAL_TOKENS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources",
                                           "python_tokens.txt")


def default_partial_tokens():
    """The released partial-separation token list (the reference's `python_tokens.txt`: 199 lines, 174 distinct
    keywords, operators and method names; shipped as package data): with the released vocabulary it gives the released
    348-entry map."""
    return read_token_file(DEFAULT_PARTIAL_TOKENS_FILE)


def read_token_file(path):
    """Read a separation token list: one token per line, blank lines skipped; whitespace inside a token is an error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"separation token file not found: {path}")
    tokens = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tok = line.rstrip("\r\n")
            if not tok:
                continue
            if any(ch.isspace() for ch in tok):
                raise TokenizerError(f"{path}:{lineno}: token {tok!r} contains whitespace; expected one token per line")
            tokens.append(tok)
    if not tokens:
        raise TokenizerError(f"{path}: no tokens; expected one token per line")
    return tokens


def build_separation(vocab, candidates, special_tokens):
    """Plan the separated vocabulary.

    `vocab` maps every token to its id (ids 0..len-1). Candidates are iterated sorted and unique; specials are skipped;
    a token already in `vocab` gets one new id for `[_DUP_]t` (map old → new); an unknown token gets two, `t` then
    `[_DUP_]t` (map first → second). Returns (new tokens in id order, map).
    """
    next_id = len(vocab)
    new_tokens, mapping = [], {}
    for tok in sorted(set(candidates)):
        if tok in special_tokens:
            continue
        if tok in vocab:
            new_tokens.append(DUP_PREFIX + tok)
            mapping[vocab[tok]] = next_id
            next_id += 1
        else:
            new_tokens += [tok, DUP_PREFIX + tok]
            mapping[next_id] = next_id + 1
            next_id += 2
    return new_tokens, mapping


def _trie_regex(tokens):
    """A compiled regex (one capturing group) matching any of `tokens`, leftmost-longest, built as a character trie."""
    root = {}
    for tok in tokens:
        node = root
        for ch in tok:
            node = node.setdefault(ch, {})
        node[""] = True

    def pattern(node):  # iterative depth would exceed no practical limit: tokens are short
        alts = [re.escape(ch) + pattern(child) for ch, child in sorted(node.items()) if ch != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return re.compile("(" + pattern(root) + ")")


def split_patterns(no_split):
    """(regex for any text, regex for text without "[_DUP_]") splitting on the tokens `no_split`: text without the
    prefix cannot hold a code-side twin, so a smaller regex that does not stop at every "[" splits it the same."""
    full = _trie_regex(sorted(no_split))
    plain = sorted(tok for tok in no_split if not tok.startswith(DUP_PREFIX))
    return full, (_trie_regex(plain) if len(plain) < len(no_split) else full)


def load_sentencepiece(path):
    """(SentencePieceProcessor, serialized model bytes) of a model file; errors name the file."""
    import sentencepiece as spm

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except Exception as exc:  # sentencepiece raises RuntimeError/OSError on a corrupt proto
        raise TokenizerError(f"{path}: not a valid SentencePiece model ({type(exc).__name__}: {exc})") from None
    if len(sp) == 0:
        raise TokenizerError(f"{path}: SentencePiece model has no pieces")
    return sp, data


# the part of a SentencePiece training recipe every kind shares (the released vocab.model's trainer spec); a kind adds
# its user_defined_symbols and normalization_rule_name
RECIPE_DEFAULTS = dict(model_type="unigram", character_coverage=0.9995, max_sentencepiece_length=16,
                       input_sentence_size=5_000_000, shuffle_input_sentence=True, max_sentence_length=1 << 16)
SPECIAL_SPLIT = _trie_regex(SPECIAL_TOKENS)  # splits a text on the special tokens: text, special, text, ...

_SURROGATE = re.compile("[\ud800-\udfff]")
_PROBES = ("", " ", "def f(x):", "return self._cache.get(key, default)", "  Résumé 東京 \u2581x\t\ty  ",
           "<NEW_LINE>")


def direct_encoder(sp):
    """`text -> ids` of SentencePiece without its Python wrapper's per-call argument handling (about 1 µs a call,
    as much as encoding a short chunk, and code has about 20 chunks per function), where this sentencepiece version
    exposes the C++ method and it gives the wrapper's ids on probe strings; otherwise `sp.encode` itself."""
    method = getattr(getattr(sp, "_processor", None), "_EncodeAsIds", None)
    try:
        options = (sp._enable_sampling, sp._nbest_size, sp._alpha, sp._add_bos, sp._add_eos, sp._reverse)
    except AttributeError:
        return sp.encode
    if method is None or options[0]:
        return sp.encode

    def encode(text):
        return method(text, *options)

    try:
        if all(encode(text) == sp.encode(text) for text in _PROBES):
            return encode
    except Exception:  # a different binding signature: the wrapper stays
        pass
    return sp.encode


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model + added specials + separation twins; subclasses segment and detokenize plain text."""

    # specials that must already be pieces of the model (the others are added after the pieces when missing)
    required_pieces = ()
    # SentencePiece trainer arguments of `pangu-codeclm tokenizer train --kind KIND` (RECIPE_DEFAULTS + the kind's)
    sentencepiece_recipe = None

    def __init__(self, sp, sp_bytes, added_tokens, separation_map, separation, source=""):
        """Low-level constructor; use `from_vocab` or `from_pretrained`. `added_tokens` are in id order from len(sp)."""
        if separation not in SEPARATIONS:
            raise TokenizerError(f"unknown separation {separation!r}; expected one of {', '.join(SEPARATIONS)}")
        self._sp = sp
        self._sp_bytes = sp_bytes
        self._n_pieces = len(sp)
        self._added = list(added_tokens)
        self._added_ids = {tok: self._n_pieces + i for i, tok in enumerate(self._added)}
        self._separation = separation
        self._map = {int(k): int(v) for k, v in separation_map.items()}
        self._inverse = {v: k for k, v in self._map.items()}
        self._code_table = list(range(self._n_pieces + len(self._added)))  # id -> code-side id
        for old, new in self._map.items():
            self._code_table[old] = new
        self.source = source
        missing = [tok for tok in SPECIAL_TOKENS if self._lookup(tok) is None]
        if missing:
            raise TokenizerError(f"{source or 'tokenizer'}: special tokens {missing} have no id")
        self._segment = self._make_segmenter()
        # every special and every added token is matched in the text before the segmenter sees it
        self._no_split = set(SPECIAL_TOKENS) | set(self._added)
        self._split_re, self._split_plain_re = split_patterns(self._no_split)
        self._no_split_ids = {tok: self.token_to_id(tok) for tok in self._no_split}
        self._standalone_ids = set(self._no_split_ids.values())
        self._specials = frozenset(SPECIAL_TOKENS)
        self._skip_ids = {self.token_to_id(t) for t in SPECIAL_TOKENS if t not in MARKERS}
        self._skip_ids |= {i for i in (sp.bos_id(), sp.eos_id()) if i >= 0}

    # ---- what a subclass supplies -------------------------------------------------------------------------------
    def _make_segmenter(self):
        """A function `plain text chunk -> piece ids` (called once per chunk between special tokens)."""
        raise NotImplementedError

    def _decode_pieces(self, ids):
        """Text of a run of piece ids (no specials, no added tokens)."""
        raise NotImplementedError

    def _config_json(self):
        """The object written as tokenizer_config.json; its "tokenizer_class" is `self.tokenizer_class`."""
        raise NotImplementedError

    @classmethod
    def training_sentences(cls, text):
        """What SentencePiece trains on for one docstring or code text (default: the text itself)."""
        yield text

    @classmethod
    def _logger(cls):
        return logging.getLogger(cls.__module__)

    def __getstate__(self):  # pickling (worker processes): the segmenter is rebuilt on load
        state = self.__dict__.copy()
        del state["_segment"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._segment = self._make_segmenter()

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_vocab(cls, vocab_model, separation="none", separate_tokens_file=None):
        """Build from a SentencePiece model: add the specials, then apply `separation` ("none", "partial", "full").

        Partial separation uses `separate_tokens_file` (one token per line) or, without it, `default_partial_tokens()`.
        """
        if separation not in SEPARATIONS:
            raise TokenizerError(f"unknown separation {separation!r}; expected one of {', '.join(SEPARATIONS)}")
        if separate_tokens_file is not None and separation != "partial":
            raise TokenizerError(f"separate_tokens_file is only used with separation='partial', not {separation!r}")
        sp, data = load_sentencepiece(vocab_model)
        unk = sp.unk_id()
        vocab = {sp.id_to_piece(i): i for i in range(len(sp))}
        absent = [tok for tok in cls.required_pieces if tok not in vocab]
        if absent:
            raise TokenizerError(f"{os.fspath(vocab_model)}: a {cls.kind} tokenizer reads {list(cls.required_pieces)} "
                                 f"from the SentencePiece model, which lacks {absent} (train it with them as "
                                 f"user-defined symbols)")
        added = []
        for tok in SPECIAL_TOKENS:  # as `add_special_tokens`: only tokens that are not pieces get new ids
            if tok not in vocab and tok not in added:
                added.append(tok)
        for i, tok in enumerate(added):
            vocab[tok] = len(sp) + i
        candidates = []
        if separation == "partial":
            base = read_token_file(separate_tokens_file) if separate_tokens_file else default_partial_tokens()
            for tok in base:
                candidates += [tok, SPIECE_UNDERLINE + tok]
        elif separation == "full":
            candidates = list(vocab)
        specials = set(SPECIAL_TOKENS) | set(BASE_SPECIAL_TOKENS) | {sp.id_to_piece(unk)}
        new_tokens, mapping = build_separation(vocab, candidates, specials)
        tok = cls(sp, data, added + new_tokens, mapping, separation, source=os.fspath(vocab_model))
        cls._logger().info("tokenizer: %d pieces from %s, %d specials added, separation %s (%s): %d mapped tokens, "
                           "vocab %d", len(sp), vocab_model, len(added), separation,
                           separate_tokens_file or ("package python_tokens.txt" if separation == "partial" else "-"),
                           len(mapping), tok.vocab_size)
        return tok

    @classmethod
    def from_pretrained(cls, directory, separation=None):
        """Read a tokenizer directory (the released checkpoints' layout, as `save_pretrained` writes it).

        Only vocab.model is required (and replicated_tokens_map.pkl when separated). Without added_tokens.json (what a
        training run of the reference leaves when its tokenizer is not saved) the tokenizer is rebuilt from vocab.model
        with the separation of tokenizer_config.json, else `separation` (e.g. the model config's), else the one whose
        map equals replicated_tokens_map.pkl; the rebuilt map must equal that file's. special_tokens_map.json and
        tokenizer_config.json are checked when present (a "tokenizer_class" there must be this class's).
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"tokenizer directory not found: {directory}")
        paths = {name: os.path.join(directory, name) for name in
                 (VOCAB_FILE, ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, SEPARATION_MAP_FILE)}
        if not os.path.isfile(paths[VOCAB_FILE]):
            raise FileNotFoundError(f"{paths[VOCAB_FILE]}: missing; a tokenizer directory needs {VOCAB_FILE} (and "
                                    f"{SEPARATION_MAP_FILE} when separated; {ADDED_TOKENS_FILE}, "
                                    f"{SPECIAL_TOKENS_MAP_FILE}, {TOKENIZER_CONFIG_FILE} are checked when present)")
        if os.path.isfile(paths[SPECIAL_TOKENS_MAP_FILE]):
            _check_special_tokens_map(paths[SPECIAL_TOKENS_MAP_FILE])
        config = {}
        if os.path.isfile(paths[TOKENIZER_CONFIG_FILE]):
            config = load_json(paths[TOKENIZER_CONFIG_FILE], TokenizerError)
            if not isinstance(config, dict):
                raise TokenizerError(f"{paths[TOKENIZER_CONFIG_FILE]}: expected a JSON object")
            written = config.get("tokenizer_class", cls.tokenizer_class)
            if written != cls.tokenizer_class:
                raise TokenizerError(f"{paths[TOKENIZER_CONFIG_FILE]}: key 'tokenizer_class' is {written!r}, not "
                                     f"{cls.tokenizer_class!r} ({cls.__name__}); read the directory with "
                                     f"pangu_codeclm.tokenization.registry.load_tokenizer")
        separation = config.get("separation") or separation
        if separation is not None and separation not in SEPARATIONS:
            where = paths[TOKENIZER_CONFIG_FILE] + ": key 'separation'" if config.get("separation") else "separation"
            raise TokenizerError(f"{where} is {separation!r}; expected one of {', '.join(SEPARATIONS)}")
        has_map = os.path.isfile(paths[SEPARATION_MAP_FILE])
        mapping = load_int_map_pickle(paths[SEPARATION_MAP_FILE]) if has_map else None
        if not os.path.isfile(paths[ADDED_TOKENS_FILE]):
            return cls._rebuild(paths, mapping, separation)
        sp, data = load_sentencepiece(paths[VOCAB_FILE])
        added = _read_added_tokens(paths[ADDED_TOKENS_FILE], len(sp))
        derived = _map_from_added(sp, added)
        if has_map:
            if mapping != derived:
                bad = sorted(set(mapping.items()) ^ set(derived.items()))[:3]
                raise TokenizerError(f"{paths[SEPARATION_MAP_FILE]}: disagrees with {paths[ADDED_TOKENS_FILE]} "
                                     f"({len(mapping)} vs {len(derived)} entries; first differences {bad})")
        elif derived:
            raise FileNotFoundError(f"{paths[SEPARATION_MAP_FILE]}: missing; {ADDED_TOKENS_FILE} has "
                                    f"{len(derived)} [_DUP_] tokens, so the separation map is required")
        else:
            mapping = {}
        separation = config.get("separation") or _infer_separation(sp, added, mapping)
        tok = cls(sp, data, added, mapping, separation, source=directory)
        cls._logger().info("tokenizer: loaded from %s (vocab %d, separation %s, %d mapped tokens)",
                           directory, tok.vocab_size, separation, len(mapping))
        return tok

    @classmethod
    def _rebuild(cls, paths, mapping, separation):
        """The tokenizer of a directory without added_tokens.json: built from vocab.model (see `from_pretrained`)."""
        directory = os.path.dirname(paths[VOCAB_FILE])
        if separation in ("partial", "full") and mapping is None:
            raise FileNotFoundError(f"{paths[SEPARATION_MAP_FILE]}: missing; separation {separation!r} needs the "
                                    f"separation map to rebuild the tokenizer from {VOCAB_FILE}")
        mapping = mapping or {}
        if separation is None:  # the map decides: empty means none; otherwise whichever separation gives it
            separation_options = ("none",) if not mapping else ("full", "partial")
        else:
            separation_options = (separation,)
        tried = []
        for option in separation_options:  # partial: `from_vocab`'s default list, the released one
            tok = cls.from_vocab(paths[VOCAB_FILE], option)
            if tok.separation_map == mapping:
                tok.source = directory
                cls._logger().info("tokenizer: %s has no %s: rebuilt from %s with separation %s, which gives the %d "
                                   "mapped tokens of %s", directory, ADDED_TOKENS_FILE, VOCAB_FILE, option,
                                   len(mapping), SEPARATION_MAP_FILE if mapping else "(no map)")
                return tok
            tried.append(f"{option}: {len(tok.separation_map)} entries")
        raise TokenizerError(f"{directory}: no {ADDED_TOKENS_FILE}, and rebuilding the tokenizer from {VOCAB_FILE} "
                             f"does not give the map of {SEPARATION_MAP_FILE} ({len(mapping)} entries; tried "
                             f"{'; '.join(tried)}): add the {ADDED_TOKENS_FILE} the model was trained with")

    def save_pretrained(self, directory):
        """Write vocab.model, added_tokens.json, special_tokens_map.json and tokenizer_config.json as the reference
        tokenizer (transformers 4.19) writes them, and replicated_tokens_map.pkl (a plain dict of ints; empty without
        separation), each file atomically. The separation is not written: loading infers it from the map."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        atomic_write_bytes(os.path.join(directory, VOCAB_FILE), self._sp_bytes)
        save_int_map_pickle(os.path.join(directory, SEPARATION_MAP_FILE), self._map)
        special_map = dict(BASE_SPECIAL_MAP, additional_special_tokens=list(SPECIAL_TOKENS))
        for name, obj in ((ADDED_TOKENS_FILE, self._added_ids), (SPECIAL_TOKENS_MAP_FILE, special_map),
                          (TOKENIZER_CONFIG_FILE, self._config_json())):
            atomic_write_text(os.path.join(directory, name), json.dumps(obj, ensure_ascii=False))
        self._logger().info("tokenizer: saved to %s (%s, vocab %d, separation %s)", directory, self.kind,
                            self.vocab_size, self._separation)
        return directory

    # ---- vocabulary ---------------------------------------------------------------------------------------------
    def _lookup(self, tok):
        if tok in self._added_ids:
            return self._added_ids[tok]
        i = self._sp.piece_to_id(tok)
        if i == self._sp.unk_id() and tok != self._sp.id_to_piece(i):
            return None
        return i

    def token_to_id(self, tok):
        """Id of a piece, special or added token; KeyError for a string that is none of them."""
        i = self._lookup(tok)
        if i is None:
            raise KeyError(f"token {tok!r} is not in the vocabulary")
        return i

    def id_to_token(self, i):
        """Piece or added-token string of an id (code-side ids give their `[_DUP_]` name)."""
        i = self._check_id(i)
        return self._sp.id_to_piece(i) if i < self._n_pieces else self._added[i - self._n_pieces]

    def _check_id(self, i):
        j = int(i)
        if not 0 <= j < self.vocab_size:
            raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
        return j

    @property
    def vocab_size(self):
        """Embedding rows: pieces + added specials + separation tokens."""
        return self._n_pieces + len(self._added)

    @property
    def separation(self):
        return self._separation

    @property
    def separation_map(self):
        """Copy of the map text-side id → code-side id (empty without separation)."""
        return dict(self._map)

    # ---- encode / decode ----------------------------------------------------------------------------------------
    def encode(self, text):
        """Text-side ids of `text` (no bos/eos added)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        try:
            return self._encode(text)
        except RuntimeError:  # SentencePiece's binding cannot take text that is not valid Unicode
            bad = _SURROGATE.search(text)
            if bad is None:
                raise
            raise TokenizerError(f"cannot encode text with a lone surrogate {bad.group()!r} at character "
                                 f"{bad.start()}: it is not valid Unicode") from None

    def _encode(self, text):
        split_re = self._split_re if DUP_PREFIX in text else self._split_plain_re
        parts = split_re.split(text)  # text, token, text, token, ..., text
        if len(parts) == 1:
            return self._segment(text)
        # Whitespace next to a token is dropped, but not at the ends of the text. Each chunk is segmented on its own
        # (one call per chunk: SentencePiece's list form costs more per call than it saves on short chunks).
        segment, no_split, last = self._segment, self._no_split_ids, len(parts) - 1
        ids = segment(parts[0].rstrip())
        for i in range(1, last, 2):
            ids.append(no_split[parts[i]])
            chunk = parts[i + 1].strip() if i + 1 < last else parts[last].lstrip()
            if chunk:
                ids += segment(chunk)
        return ids

    def encode_code(self, code):
        """Code-side ids: `encode(code)` with each id sent through the separation map."""
        ids = self.encode(code)
        return list(map(self._code_table.__getitem__, ids)) if self._map else ids

    def to_text_side(self, ids):
        """Map code-side ids back to their text-side twins."""
        inverse = self._inverse
        return [inverse.get(int(i), int(i)) for i in ids]

    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids` (text- or code-side ids alike); see the module docstring for the spacing rules."""
        parts, run = [], []  # parts: (text, kind) with kind "run", "special" or "added"

        def flush():
            if run:
                text = self._decode_pieces(run)
                if text:
                    parts.append((text, "run"))
                run.clear()

        for raw in ids:
            i = self._check_id(raw)
            i = self._inverse.get(i, i)
            if skip_special_tokens and i in self._skip_ids:
                continue
            if i in self._standalone_ids:
                flush()
                text = self.id_to_token(i).replace(SPIECE_UNDERLINE, " ").strip()
                if text:
                    parts.append((text, "special" if text in self._specials else "added"))
            else:
                run.append(i)
        flush()
        out = []
        for k, (text, kind) in enumerate(parts):
            if k:
                prev, prev_kind = parts[k - 1]
                if "special" in (kind, prev_kind) or _needs_space(prev, prev_kind, text, kind):
                    out.append(" ")
            out.append(text)
        return "".join(out)

    def __repr__(self):
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, separation={self._separation!r}, "
                f"mapped={len(self._map)}, source={self.source!r})")


# special_tokens_map.json's base tokens, as the reference tokenizer writes them
BASE_SPECIAL_MAP = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                    "mask_token": "<mask>"}


def _is_word_char(ch):
    return ch.isalnum() or ch == "_"


def _needs_space(left, left_kind, right, right_kind):
    """Space between two decoded parts, at least one of them an added token (see `SentencePieceTokenizer.decode`)."""
    for text, kind in ((left, left_kind), (right, right_kind)):
        if kind == "added" and not all(_is_word_char(ch) for ch in text):
            return True  # an operator-like added token: spaced
    return _is_word_char(left[-1]) and _is_word_char(right[0])


def _read_added_tokens(path, n_pieces):
    obj = load_json(path, TokenizerError)
    if not isinstance(obj, dict):
        raise TokenizerError(f"{path}: expected a JSON object token -> id, found {type(obj).__name__}")
    for tok, i in obj.items():
        if type(i) is not int:
            raise TokenizerError(f"{path}: token {tok!r} has id {i!r}; expected an int")
    by_id = sorted(obj.items(), key=lambda kv: kv[1])
    for k, (tok, i) in enumerate(by_id):
        if i != n_pieces + k:
            raise TokenizerError(f"{path}: token {tok!r} has id {i}; expected ids {n_pieces}.."
                                 f"{n_pieces + len(obj) - 1} without gaps (the model has {n_pieces} pieces)")
    return [tok for tok, _ in by_id]


def _check_special_tokens_map(path):
    obj = load_json(path, TokenizerError)
    extra = obj.get("additional_special_tokens") if isinstance(obj, dict) else None
    if not isinstance(extra, list):
        raise TokenizerError(f"{path}: expected a JSON object with a list 'additional_special_tokens'")
    # transformers writes a token as a string, or (newer versions) as {"content": token, "lstrip": ..., ...}
    names = {item.get("content") if isinstance(item, dict) else item for item in extra}
    missing = [tok for tok in SPECIAL_TOKENS if tok not in names]
    if missing:
        raise TokenizerError(f"{path}: 'additional_special_tokens' lacks {missing}")


def _map_from_added(sp, added):
    """The separation map implied by the added tokens: id(t) → id([_DUP_]t)."""
    ids = {tok: len(sp) + i for i, tok in enumerate(added)}
    mapping = {}
    for tok, new in ids.items():
        if not tok.startswith(DUP_PREFIX):
            continue
        base = tok[len(DUP_PREFIX):]
        if base in ids:
            mapping[ids[base]] = new
        else:
            old = sp.piece_to_id(base)
            if old != sp.unk_id() or base == sp.id_to_piece(old):
                mapping[old] = new
    return mapping


def _infer_separation(sp, added, mapping):
    """'full' when every ordinary token has a code-side twin, 'partial' when some do, 'none' when none do."""
    if not mapping:
        return "none"
    specials = set(SPECIAL_TOKENS) | set(BASE_SPECIAL_TOKENS)
    base = [sp.id_to_piece(i) for i in range(len(sp))] + [t for t in added if not t.startswith(DUP_PREFIX)]
    ordinary = sum(1 for tok in base if tok not in specials)
    return "full" if len(mapping) >= ordinary else "partial"
