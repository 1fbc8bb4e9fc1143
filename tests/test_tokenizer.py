"""PanguTokenizer: reference id parity, separation sizes, save/load, errors, and `pangu-codeclm tokenizer train`."""
import json
import os
import pickle
import random
import shutil

import pytest

from conftest import SHARED_DATA
from pangu_codeclm import cli
from pangu_codeclm.tokenization.base import (ADDED_TOKENS_FILE, SEPARATION_MAP_FILE, SPECIAL_TOKENS,
                                             SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, VOCAB_FILE,
                                             TokenizerError)
from pangu_codeclm.tokenization.pangu import PanguTokenizer
from pangu_codeclm.tokenization.sentencepiece_base import default_partial_tokens

CODE = "def add(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>"
DOC = "Return the sum of a and b."
OPS = "x -= 1 <NEW_LINE> s.rindex(y)"
SPECIALS_TEXT = "<comments>  Add two numbers <python>def<eot>"
DUP = "[_DUP_]\u2581return nonlocal"

# Ids produced by the reference tokenizer (transformers 4.19 PanguAlphaTokenizer + add_special_tokens + the
# separation loop of the released data script) on the released vocab.model: (text ids, code ids or None if equal).
REFERENCE = {
    "none": {
        CODE: ([19, 6, 98, 9, 72, 10, 6, 90, 16, 3, 4, 24, 59, 47, 6, 90, 3, 5], None),
        DOC: ([1107, 28, 6, 374, 60, 59, 67, 6, 90, 8], None),
        OPS: ([6, 37, 1325, 219, 3, 6, 21, 8, 78, 119, 9, 92, 12], None),
        SPECIALS_TEXT: ([32011, 1859, 1457, 3438, 32004, 19, 32001], None),
        DUP: ([6, 27, 7, 26199, 7, 39, 24, 12143], None),
    },
    "partial": {
        CODE: ([19, 6, 98, 9, 72, 10, 6, 90, 16, 3, 4, 24, 59, 47, 6, 90, 3, 5],
               [32310, 6, 32068, 32019, 72, 32029, 6, 90, 16, 3, 4, 32419, 59, 32229, 6, 90, 3, 5]),
        DOC: ([1107, 28, 6, 374, 60, 59, 67, 6, 90, 8], [1107, 28, 6, 32192, 60, 59, 32279, 6, 90, 32034]),
        OPS: ([6, 37, 32031, 219, 3, 6, 21, 8, 32177, 6, 9, 92, 12],
              [6, 37, 32032, 219, 3, 6, 21, 32034, 32178, 6, 32019, 92, 32020]),
        SPECIALS_TEXT: ([32011, 1859, 1457, 3438, 32004, 19, 32001], [32011, 1859, 1457, 3438, 32004, 32310, 32001]),
        DUP: ([32419, 32157], [32419, 32158]),
    },
    "full": {
        CODE: ([19, 6, 98, 9, 72, 10, 6, 90, 16, 3, 4, 24, 59, 47, 6, 90, 3, 5],
               [61237, 59469, 45452, 32290, 45283, 33018, 59469, 46280, 32832, 3, 4, 62643, 60688, 59704, 59469,
                46280, 3, 5]),
        DOC: ([1107, 28, 6, 374, 60, 59, 67, 6, 90, 8],
              [60420, 62989, 59469, 57040, 62203, 60688, 60752, 59469, 46280, 33217]),
        OPS: ([6, 37, 1325, 219, 3, 6, 21, 8, 78, 119, 9, 92, 12],
              [59469, 58855, 59719, 59800, 3, 59469, 55791, 33217, 54980, 51136, 32290, 58918, 32797]),
        SPECIALS_TEXT: ([32011, 1859, 1457, 3438, 32004, 19, 32001], [32011, 60118, 63101, 62180, 32004, 61237, 32001]),
        DUP: ([62643, 12143], [62643, 62159]),
    },
}
SIZES = {"none": (32013, 0), "partial": (32477, 348), "full": (64007, 31994)}
RELEASED_TOKENIZER_FILES = SHARED_DATA / "pangu" / "released_tokenizer_files"


@pytest.fixture(scope="module")
def toks(pangu_vocab_model, python_tokens_file):
    return {"none": PanguTokenizer.from_vocab(pangu_vocab_model),
            "partial": PanguTokenizer.from_vocab(pangu_vocab_model, "partial", python_tokens_file),
            "full": PanguTokenizer.from_vocab(pangu_vocab_model, "full")}


@pytest.fixture(scope="module")
def sp(pangu_vocab_model):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=str(pangu_vocab_model))


def test_special_token_ids(toks):
    tok = toks["none"]
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [32000 + i for i in range(12)] + [3, 4, 5, 32012]
    assert (tok.eod_id, tok.eot_id, tok.pad_id, tok.python_id, tok.comments_id, tok.mask_id) == \
        (32000, 32001, 32002, 32004, 32011, 32012)
    assert (tok.newline_id, tok.indent_id, tok.dedent_id) == (3, 4, 5)
    assert tok.id_to_token(32007) == "<javascript>" and tok.id_to_token(24) == "\u2581return"
    for name in ("partial", "full"):  # separation never moves the specials
        assert [toks[name].token_to_id(t) for t in SPECIAL_TOKENS] == [tok.token_to_id(t) for t in SPECIAL_TOKENS]


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_sizes_and_maps(toks, separation):
    tok = toks[separation]
    assert (tok.vocab_size, len(tok.separation_map)) == SIZES[separation]
    assert tok.separation == separation and len(tok) == tok.vocab_size
    values = set(tok.separation_map.values())
    assert len(values) == len(tok.separation_map)  # injective
    assert not values & set(tok.separation_map)  # a code-side id is never a text-side key
    for old, new in list(tok.separation_map.items())[:50]:
        assert tok.id_to_token(new) == "[_DUP_]" + tok.id_to_token(old)
    specials = {tok.token_to_id(t) for t in SPECIAL_TOKENS} | {0, 1, 2}
    assert not specials & set(tok.separation_map)


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_reference_ids(toks, separation):
    tok = toks[separation]
    for text, (ids, code_ids) in REFERENCE[separation].items():
        assert tok.encode(text) == ids, text
        assert tok.encode_code(text) == (code_ids or ids), text


def test_ids_by_hand_against_sentencepiece(toks, sp):
    tok = toks["none"]
    assert tok.encode(SPECIALS_TEXT) == [32011] + sp.encode("Add two numbers") + [32004] + sp.encode("def") + [32001]
    # each chunk is encoded on its own (its own dummy prefix); whitespace next to a special is dropped
    assert tok.encode("a<NEW_LINE>b") == sp.encode("a") + [3] + sp.encode("b")
    assert tok.encode("  a  <eot>  ") == sp.encode("a") + [32001]
    assert tok.encode(DOC) == sp.encode(DOC)  # no special: plain SentencePiece
    assert tok.encode("") == [] and tok.encode("   ") == []
    partial = toks["partial"]  # `-=` and `rindex` are not pieces: added tokens, split out even inside words
    assert partial.encode("y-=1") == sp.encode("y") + [partial.token_to_id("-=")] + sp.encode("1")
    assert partial.encode("nonlocals") == [partial.token_to_id("nonlocal")] + sp.encode("s")



def test_direct_sentencepiece_call_matches_the_wrapper(toks, sp):
    from pangu_codeclm.tokenization.sentencepiece_base import direct_encoder

    encode = direct_encoder(sp)
    for text in ["", "def f(x):", "  Résumé 東京  a\tb ", "<NEW_LINE> x", "!" * 40]:
        assert encode(text) == sp.encode(text), text

    class WrapperOnly:  # a sentencepiece without the private binding keeps the public call
        def encode(self, text):
            return sp.encode(text)

    wrapper = WrapperOnly()
    assert direct_encoder(wrapper) == wrapper.encode


def test_text_with_and_without_dup_prefix_splits_alike(toks, sp):
    """Text without "[_DUP_]" is split by a smaller regex; text with it by the full one: both as the reference."""
    partial = toks["partial"]
    dup_return = partial.token_to_id("[_DUP_]\u2581return")
    assert partial.encode("x[_DUP_]\u2581return[1]") == sp.encode("x") + [dup_return] + sp.encode("[1]")
    assert partial.encode("x[_DUP_ ]\u2581return[1]") == sp.encode("x[_DUP_ ]\u2581return[1]")
    full = toks["full"]
    assert full.encode("a[i] <NEW_LINE> [_DUP_]a") == sp.encode("a[i]") + [3, full.token_to_id("[_DUP_]a")]


def test_text_that_is_not_valid_unicode_is_named(toks):
    for tok in toks.values():
        with pytest.raises(TokenizerError, match=r"lone surrogate '\\udc80' at character 7: it is not valid Unicode"):
            tok.encode_code("return \udc80 <NEW_LINE>")
        with pytest.raises(TokenizerError, match="at character 1"):
            tok.encode("x\ud800")


def test_pickle_round_trip(toks):
    for separation, tok in toks.items():
        copy = pickle.loads(pickle.dumps(tok))
        assert copy.encode(CODE) == tok.encode(CODE) and copy.encode_code(CODE) == tok.encode_code(CODE), separation
        assert copy.vocab_size == tok.vocab_size and copy.separation_map == tok.separation_map

@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_decode_round_trip(toks, separation):
    tok = toks[separation]
    canonical = [CODE, DOC, "<comments> Add two numbers. <python> def f(): <NEW_LINE> <INDENT> pass <NEW_LINE> "
                 "<DEDENT> <eot>", "if x: <NEW_LINE> <INDENT> y = {'a': [1, 2]} # note <NEW_LINE> <DEDENT>"]
    for text in canonical:
        assert tok.decode(tok.encode(text)) == text
        assert tok.decode(tok.encode_code(text)) == text
    # whitespace the encoder dropped around added tokens comes back by rule (partial)
    text = "x -= 1 <NEW_LINE> s.rindex(y) <NEW_LINE> nonlocal x <NEW_LINE> return types.NoneType"
    assert tok.decode(tok.encode_code(text)) == text
    assert tok.decode(tok.encode_code("<comments> hi <python> pass <eot>"), skip_special_tokens=True) == "hi pass"
    assert tok.decode(tok.encode("a  b\n\tc")) == "a b c"  # nmt_nfkc collapses whitespace


def test_encode_code_maps_only_code_side(toks):
    tok = toks["partial"]
    text_ids, code_ids = tok.encode(CODE), tok.encode_code(CODE)
    assert len(text_ids) == len(code_ids)
    mapping = tok.separation_map
    for t, c in zip(text_ids, code_ids):
        assert c == mapping.get(t, t)
    assert tok.to_text_side(code_ids) == text_ids
    assert toks["none"].encode_code(CODE) == toks["none"].encode(CODE)


def test_partial_token_file_overrides_default(pangu_vocab_model, tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("return\nfrobnicate_xyz\n\n")
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, "partial", path)
    # sorted candidates: frobnicate_xyz (new: 2 ids), return (piece 240), ▁frobnicate_xyz (new), ▁return (piece 24)
    assert tok.separation_map == {32013: 32014, 240: 32015, 32016: 32017, 24: 32018}
    assert tok.vocab_size == 32019
    assert [tok.id_to_token(i) for i in range(32013, 32019)] == [
        "frobnicate_xyz", "[_DUP_]frobnicate_xyz", "[_DUP_]return", "\u2581frobnicate_xyz",
        "[_DUP_]\u2581frobnicate_xyz", "[_DUP_]\u2581return"]
    assert tok.encode_code("return frobnicate_xyz") == [32018, 32014]
    assert tok.decode([32018, 32014]) == "return frobnicate_xyz"


def test_default_partial_tokens_are_the_released_list(pangu_vocab_model):
    tokens = default_partial_tokens()
    for expected in ("def", "nonlocal", "+=", "->", "**=", "print", "isinstance", "append"):
        assert expected in tokens
    assert len(tokens) == 199 and len(set(tokens)) == 174           # the released file repeats 25 names
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, "partial")
    assert tok.separation == "partial"
    assert len(tok.separation_map) == SIZES["partial"][1] == 348  # the released map, from package data
    assert tok.token_to_id("[_DUP_]\u2581def") == tok.separation_map[tok.token_to_id("\u2581def")]


def test_save_and_load(toks, tmp_path):
    for name in ("none", "partial"):
        tok = toks[name]
        out = tmp_path / name
        tok.save_pretrained(out)
        assert sorted(os.listdir(out)) == sorted([VOCAB_FILE, ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE,
                                                  TOKENIZER_CONFIG_FILE, SEPARATION_MAP_FILE])
        with open(out / SEPARATION_MAP_FILE, "rb") as f:
            raw = pickle.load(f)
        assert type(raw) is dict and raw == tok.separation_map
        added = json.loads((out / ADDED_TOKENS_FILE).read_text())
        assert added["<eod>"] == 32000 and len(added) == tok.vocab_size - 32000
        assert json.loads((out / SPECIAL_TOKENS_MAP_FILE).read_text())["additional_special_tokens"] == \
            list(SPECIAL_TOKENS)
        back = PanguTokenizer.from_pretrained(out)
        assert (back.vocab_size, back.separation, back.separation_map) == \
            (tok.vocab_size, tok.separation, tok.separation_map)
        for text in (CODE, DOC, OPS, SPECIALS_TEXT, DUP):
            assert back.encode(text) == tok.encode(text) and back.encode_code(text) == tok.encode_code(text)


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_load_infers_separation_without_config_key(toks, tmp_path, separation):
    """A released tokenizer_config.json (and so ours) has no 'separation' key: it is inferred from the map."""
    toks[separation].save_pretrained(tmp_path)
    assert "separation" not in json.loads((tmp_path / TOKENIZER_CONFIG_FILE).read_text())
    back = PanguTokenizer.from_pretrained(tmp_path)
    assert (back.separation, back.vocab_size) == (separation, SIZES[separation][0])


def test_load_accepts_added_token_dicts(toks, tmp_path):
    """Newer transformers write special tokens as {"content": ...} objects."""
    toks["none"].save_pretrained(tmp_path)
    entries = [{"content": t, "lstrip": False, "rstrip": False, "normalized": False} for t in SPECIAL_TOKENS]
    (tmp_path / SPECIAL_TOKENS_MAP_FILE).write_text(json.dumps({"additional_special_tokens": entries}))
    assert PanguTokenizer.from_pretrained(tmp_path).encode(SPECIALS_TEXT) == REFERENCE["none"][SPECIALS_TEXT][0]


@pytest.fixture
def saved_partial(toks, tmp_path):
    out = tmp_path / "tok"
    toks["partial"].save_pretrained(out)
    return out


@pytest.mark.parametrize("removed", [[VOCAB_FILE], [SEPARATION_MAP_FILE], [SEPARATION_MAP_FILE, ADDED_TOKENS_FILE]])
def test_missing_file_is_named(saved_partial, removed):
    for name in removed:
        os.remove(saved_partial / name)
    with pytest.raises(FileNotFoundError, match=removed[0].replace(".", r"\.") + ": missing"):
        PanguTokenizer.from_pretrained(saved_partial, separation="partial")


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_export_is_the_released_format(toks, tmp_path, separation):
    """The three json files equal, byte for byte, those the reference tokenizer writes (../shared/data/pangu/
    released_tokenizer_files/; no partial folder there: partial is checked for the same keys)."""
    toks[separation].save_pretrained(tmp_path)
    released = RELEASED_TOKENIZER_FILES / ("none" if separation == "partial" else separation)
    if not released.is_dir():
        pytest.skip(f"released tokenizer files not found at {released}")
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        assert (tmp_path / name).read_bytes() == (released / name).read_bytes(), name
    ours = (tmp_path / ADDED_TOKENS_FILE).read_bytes()
    if separation == "partial":  # the 13 specials as released, then the 464 separation tokens in id order
        added = json.loads(ours)
        specials = json.loads((released / ADDED_TOKENS_FILE).read_bytes())
        assert list(added.items())[:13] == list(specials.items()) and list(added.values()) == list(range(32000, 32477))
        assert ours == json.dumps(added, ensure_ascii=False).encode("utf-8")
    else:
        assert ours == (released / ADDED_TOKENS_FILE).read_bytes()


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_directory_without_json_files_is_rebuilt_from_vocab_and_map(toks, pangu_vocab_model, tmp_path, separation,
                                                                     caplog):
    """What a reference training run leaves when its tokenizer is not saved: vocab.model (+ the map). Partial: the
    default token list (the list a rebuild can know)."""
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, "partial") if separation == "partial" else toks[separation]
    tok.save_pretrained(tmp_path)
    for name in (ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        os.remove(tmp_path / name)
    if separation == "none":
        os.remove(tmp_path / SEPARATION_MAP_FILE)
    for hint in (None, separation):
        with caplog.at_level("INFO", logger="pangu_codeclm.tokenization.pangu"):
            back = PanguTokenizer.from_pretrained(tmp_path, separation=hint)
        assert (back.vocab_size, back.separation, back.separation_map) == \
            (tok.vocab_size, separation, tok.separation_map)
        assert f"has no {ADDED_TOKENS_FILE}: rebuilt from {VOCAB_FILE} with separation {separation}" in caplog.text
        for text in (CODE, DOC, OPS, SPECIALS_TEXT, DUP):
            assert back.encode(text) == tok.encode(text) and back.encode_code(text) == tok.encode_code(text)
            if separation != "partial":
                assert back.encode_code(text) == (REFERENCE[separation][text][1] or REFERENCE[separation][text][0])
    if separation != "none":  # a map no separation of this vocabulary gives is refused, naming the file
        with open(tmp_path / SEPARATION_MAP_FILE, "wb") as f:
            pickle.dump(dict(list(tok.separation_map.items())[:-1]), f)
        with pytest.raises(TokenizerError, match=rf"no {ADDED_TOKENS_FILE}, and rebuilding .* does not give the map "
                                                 rf"of {SEPARATION_MAP_FILE} \({len(tok.separation_map) - 1} entries"):
            PanguTokenizer.from_pretrained(tmp_path)


def test_optional_json_files_are_checked_only_when_present(saved_partial, toks):
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        os.remove(saved_partial / name)
        back = PanguTokenizer.from_pretrained(saved_partial)
        assert back.separation_map == toks["partial"].separation_map
        assert back.encode(DUP) == REFERENCE["partial"][DUP][0]


def test_missing_map_is_fine_without_separation(toks, tmp_path):
    toks["none"].save_pretrained(tmp_path)
    os.remove(tmp_path / SEPARATION_MAP_FILE)
    assert PanguTokenizer.from_pretrained(tmp_path).separation_map == {}


def test_corrupt_files(saved_partial, tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        PanguTokenizer.from_pretrained(tmp_path / "nowhere")
    good = tmp_path / "good"
    shutil.copytree(saved_partial, good)

    count = [0]

    def broken(name, data):
        count[0] += 1
        target = tmp_path / f"bad{count[0]}"
        shutil.copytree(good, target)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(target / name, mode) as f:
            f.write(data)
        return target

    with pytest.raises(TokenizerError, match=r"vocab\.model: not a valid SentencePiece model"):
        PanguTokenizer.from_pretrained(broken(VOCAB_FILE, b"garbage"))
    with pytest.raises(TokenizerError, match=r"added_tokens\.json:\d+: invalid JSON"):
        PanguTokenizer.from_pretrained(broken(ADDED_TOKENS_FILE, "{not json"))
    with pytest.raises(TokenizerError, match=r"added_tokens\.json: token '<eot>' has id 32005; expected ids"):
        PanguTokenizer.from_pretrained(broken(ADDED_TOKENS_FILE, json.dumps({"<eod>": 32000, "<eot>": 32005})))
    with pytest.raises(ValueError, match=r"replicated_tokens_map\.pkl: disagrees with"):
        PanguTokenizer.from_pretrained(broken(SEPARATION_MAP_FILE, pickle.dumps({1: 2})))
    with pytest.raises(ValueError, match=r"replicated_tokens_map\.pkl: unsafe or malformed pickle"):
        PanguTokenizer.from_pretrained(broken(SEPARATION_MAP_FILE, pickle.dumps({1: os.getcwd})))
    with pytest.raises(TokenizerError, match=r"special_tokens_map\.json: 'additional_special_tokens' lacks"):
        PanguTokenizer.from_pretrained(broken(SPECIAL_TOKENS_MAP_FILE, json.dumps({"additional_special_tokens": []})))
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json: key 'separation' is 'some'"):
        PanguTokenizer.from_pretrained(broken(TOKENIZER_CONFIG_FILE, json.dumps({"separation": "some"})))


def test_bad_arguments(toks, pangu_vocab_model, python_tokens_file, tmp_path):
    with pytest.raises(TokenizerError, match="unknown separation 'half'"):
        PanguTokenizer.from_vocab(pangu_vocab_model, "half")
    with pytest.raises(TokenizerError, match="only used with separation='partial'"):
        PanguTokenizer.from_vocab(pangu_vocab_model, "full", python_tokens_file)
    bad = tmp_path / "tokens.txt"
    bad.write_text("def\nif else\n")
    with pytest.raises(TokenizerError, match=r"tokens\.txt:2: token 'if else' contains whitespace"):
        PanguTokenizer.from_vocab(pangu_vocab_model, "partial", bad)
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        PanguTokenizer.from_vocab(tmp_path / "missing.model")
    tok = toks["none"]
    with pytest.raises(ValueError, match=r"token id 32013 is outside the vocabulary \[0, 32013\)"):
        tok.decode([5, 32013])
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.token_to_id("<no-such-token>")
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


# ---- tokenizer training --------------------------------------------------------------------------------------------

def _synthetic_records(path, n=2000, seed=0):
    """n (docstring, marker code) pairs with random identifiers, written as jsonl."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "do", "sha", "quo", "bri", "x", "ya", "gu"]
    verbs = ["compute", "return", "build", "parse", "load", "count", "merge", "split", "check", "sort"]
    nouns = ["value", "list", "items", "names", "total", "path", "table", "index", "number", "result"]

    def word():
        return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 3)))

    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            name, a, b = f"{rng.choice(verbs)}_{word()}", word(), word()
            doc = f"{rng.choice(verbs).capitalize()} the {rng.choice(nouns)} of {a} and {b}; {word()} {word()}."
            body = rng.choice([f"return {a} + {b} * {rng.randint(0, 999)}",
                               f"for {a} in range({b}): <NEW_LINE> <INDENT> {b} += {a} <NEW_LINE> <DEDENT> return {b}",
                               f"if {a} > {b}: <NEW_LINE> <INDENT> return '{word()}' <NEW_LINE> <DEDENT> return None"])
            code = f"def {name}({a}, {b}): <NEW_LINE> <INDENT> {body} <NEW_LINE> <DEDENT>"
            f.write(json.dumps({"_id": str(i), "docstring": doc, "code": code}) + "\n")
    return path


def test_tokenizer_train_cli(tmp_path, capsys):
    records = _synthetic_records(tmp_path / "records.jsonl")
    out = tmp_path / "tok"
    assert cli.main(["tokenizer", "train", "--records", str(records), "--vocab-size", "1000", "--out", str(out)]) == 0
    assert "vocab size 1013" in capsys.readouterr().out
    tok = PanguTokenizer.from_pretrained(out)
    assert tok.vocab_size == 1000 + 13 and tok.separation == "none"
    assert [tok.id_to_token(i) for i in range(6)] == ["<unk>", "<s>", "</s>", "<NEW_LINE>", "<INDENT>", "<DEDENT>"]
    assert (tok.eod_id, tok.mask_id, tok.newline_id) == (1000, 1012, 3)
    code = "def f(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>"
    assert tok.decode(tok.encode(code)) == code

    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto()
    proto.ParseFromString((out / VOCAB_FILE).read_bytes())
    spec = proto.trainer_spec
    assert spec.model_type == pb.TrainerSpec.UNIGRAM and spec.vocab_size == 1000
    assert list(spec.user_defined_symbols) == ["<NEW_LINE>", "<INDENT>", "<DEDENT>"]
    assert abs(spec.character_coverage - 0.9995) < 1e-6 and spec.max_sentencepiece_length == 16
    assert proto.normalizer_spec.name == "nmt_nfkc"


def test_tokenizer_train_partial_and_errors(tmp_path, capsys):
    records = _synthetic_records(tmp_path / "records.jsonl", n=1500, seed=1)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("return\nfor\n+=\n")
    out = tmp_path / "tok"
    assert cli.main(["tokenizer", "train", "--records", str(records), "--vocab-size", "800", "--out", str(out),
                     "--separation", "partial", "--separate-tokens-file", str(tokens)]) == 0
    tok = PanguTokenizer.from_pretrained(out)
    assert tok.separation == "partial" and tok.vocab_size > 813
    assert len(tok.separation_map) == 6  # 3 tokens, each bare and with ▁
    assert tok.token_to_id("[_DUP_]\u2581return") == tok.separation_map[tok.token_to_id("\u2581return")]

    capsys.readouterr()
    too_big = ["tokenizer", "train", "--records", str(records), "--vocab-size", "500000", "--out", str(tmp_path / "x")]
    assert cli.main(too_big) == 2
    assert "SentencePiece training failed" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli.main(["tokenizer", "train", "--records", str(empty), "--vocab-size", "100", "--out", str(out)]) == 2
    assert "no sentences" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "docstring": "d"}\n')
    assert cli.main(["tokenizer", "train", "--records", str(bad), "--vocab-size", "100", "--out", str(out)]) == 2
    assert "bad.jsonl:1: missing key(s) ['code']" in capsys.readouterr().err
