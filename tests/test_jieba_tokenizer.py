"""JiebaTokenizer (PanGu-Alpha's jieba + SentencePiece): ids, round trip, specials, separation, the loader, training,
and `pangu-codeclm prepare` on a jieba tokenizer directory. The SentencePiece model is trained here, in seconds."""
import json
import os
import pickle
import random
import subprocess
import sys

import pytest

from pangu_codeclm import cli
from pangu_codeclm.tokenization.base import (BASE_SPECIAL_TOKENS, SPECIAL_TOKENS, TOKENIZER_CONFIG_FILE, VOCAB_FILE,
                                             TokenizerError)
from pangu_codeclm.tokenization.jieba import JiebaTokenizer
from pangu_codeclm.tokenization.pangu import PanguTokenizer
from pangu_codeclm.tokenization.registry import kind_of, load_tokenizer, tokenizer_cls

ZH = ["我们", "北京大学", "学习", "自然语言处理", "今天", "天气", "很好", "公园", "散步", "这个", "函数", "返回", "两个",
      "数字", "的", "和", "列表", "中", "所有", "元素", "平均值", "计算", "字符串", "长度", "如果", "否则", "结果", "在", "去"]
EN = ["return", "the", "sum", "of", "list", "numbers", "compute", "mean", "value", "string", "length", "items", "x"]
PUNCT = ["，", "。", "！", "；", " ", "  "]
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "do", "sha", "quo", "bri", "ya", "gu"]
# round-trip texts: every character is frequent in the training records below
TEXTS = ["我们在北京大学学习自然语言处理。", "今天天气很好，我们去公园散步！", "return the sum of the list.",
         "计算列表中所有元素的平均值 and return the mean value", "def f(items):\n    return sum(items)\n",
         "这个函数  返回  两个数字的和\n结果\n\n  length of the string  "]


def _records(path, n=600, seed=0):
    """n (docstring, marker code) records mixing Chinese, English and code."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            doc = "".join(rng.choice(ZH) + rng.choice(PUNCT + [""] * 4) for _ in range(rng.randint(3, 9)))
            doc += " " + " ".join(rng.choice(EN) for _ in range(rng.randint(2, 6))) + rng.choice([".", "。", ""])
            a, b = rng.choice(EN), "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
            body = rng.choice([f"return {a} + {b}", f"return sum({a})", f"for {a} in {b}: <NEW_LINE> <INDENT> "
                               f"print({a}) <NEW_LINE> <DEDENT> return len({b})", f"return mean({a}, {b})"])
            code = f"def {rng.choice(EN)}_{i % 7}({a}, {b}): <NEW_LINE> <INDENT> {body} <NEW_LINE> <DEDENT>"
            if i % 3 == 0:
                code = f"def f(items):\n    return sum(items)\n{code}"
            f.write(json.dumps({"_id": str(i), "docstring": doc, "code": code}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(records path, tokenizer directory) of `pangu-codeclm tokenizer train --kind jieba`, separation none."""
    root = tmp_path_factory.mktemp("jieba")
    records = _records(root / "records.jsonl")
    out = root / "tok"
    assert cli.main(["tokenizer", "train", "--kind", "jieba", "--records", str(records), "--vocab-size", "300",
                     "--out", str(out)]) == 0
    return records, out


@pytest.fixture(scope="module")
def tok(trained):
    return load_tokenizer(trained[1])


@pytest.fixture(scope="module")
def sp(trained):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=str(trained[1] / VOCAB_FILE))


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    """The test's own jieba (default dictionary, its cache in a test directory): text -> the string SentencePiece
    must see, built here from jieba.cut without the package's helpers."""
    import jieba
    jieba.setLogLevel(40)
    segmenter = jieba.Tokenizer()
    segmenter.tmp_dir = str(tmp_path_factory.mktemp("jieba-cache"))

    def joined(text):
        return " ".join(w.replace(" ", "\u2582").replace("\n", "\u2583") for w in segmenter.cut(text, cut_all=False))
    return joined


def test_ids_are_jieba_words_then_sentencepiece(tok, sp, words):
    assert isinstance(tok, JiebaTokenizer) and tok.separation == "none"
    for text in TEXTS:
        assert tok.encode(text) == sp.encode(words(text)), text
    # the segmentation is visible: jieba's word boundaries are spaces SentencePiece sees, plain text has none
    assert words("自然语言处理") == "自然语言 处理"
    assert tok.encode("自然语言处理") == sp.encode("自然语言 处理") != sp.encode("自然语言处理")
    assert tok.encode("a  b\nc") == sp.encode("a \u2582 \u2582 b \u2583 c")


def test_decode_round_trip_keeps_spaces_and_newlines(tok):
    for text in TEXTS:
        ids = tok.encode(text)
        assert 0 not in ids, text  # id 0 is <unk>: every character is covered
        assert tok.decode(ids) == text, text
    code = "def f(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>"
    assert tok.decode(tok.encode(code)) == code  # one space around each marker, as the PanGu tokenizer


def test_special_tokens_are_split_out_before_jieba(tok, sp, words):
    eot, mask, comments, python = tok.eot_id, tok.mask_id, tok.comments_id, tok.python_id
    assert tok.encode("北京<mask>大学") == sp.encode(words("北京")) + [mask] + sp.encode(words("大学"))
    assert tok.encode("<comments> 计算平均值 <python>return mean(items)<eot>") == \
        [comments] + sp.encode(words("计算平均值")) + [python] + sp.encode(words("return mean(items)")) + [eot]
    code = "for x in items: <NEW_LINE> <INDENT> print(x) <NEW_LINE> <DEDENT>"
    assert tok.encode(code) == (sp.encode(words("for x in items:")) + [tok.newline_id, tok.indent_id]
                                + sp.encode(words("print(x)")) + [tok.newline_id, tok.dedent_id])
    assert tok.decode(tok.encode("<comments>我们 <eot>"), skip_special_tokens=True) == "我们"
    assert tok.decode(tok.encode("<comments>我们 <eot>")) == "<comments> 我们 <eot>"


def test_eod_eot_pad_come_from_the_model_and_the_other_specials_follow_the_pieces(tok, sp):
    assert (tok.eod_id, tok.eot_id, tok.pad_id) == tuple(sp.piece_to_id(t) for t in ("<eod>", "<eot>", "<pad>"))
    assert (tok.eod_id, tok.eot_id, tok.pad_id) == (3, 4, 5)  # the recipe's user symbols after <unk> <s> </s>
    added = [t for t in SPECIAL_TOKENS if t not in ("<eod>", "<eot>", "<pad>")]
    assert [tok.token_to_id(t) for t in added] == list(range(len(sp), len(sp) + len(added)))
    assert tok.vocab_size == len(sp) + len(added) == 300 + 13
    assert (tok.newline_id, tok.mask_id) == (300 + added.index("<NEW_LINE>"), 300 + 12)


def test_a_model_without_eod_is_refused_naming_the_file(pangu_vocab_model):
    with pytest.raises(TokenizerError, match=r"vocab\.model: a jieba tokenizer reads \['<eod>', '<eot>', '<pad>'\] "
                                             r"from the SentencePiece model, which lacks \['<eod>', '<eot>', '<pad>'\]"):
        JiebaTokenizer.from_vocab(pangu_vocab_model)


def test_full_and_partial_separation(trained, tok, sp, tmp_path):
    model = trained[1] / VOCAB_FILE
    full = JiebaTokenizer.from_vocab(model, "full")
    specials = set(SPECIAL_TOKENS) | set(BASE_SPECIAL_TOKENS)
    ordinary = [i for i in range(tok.vocab_size) if tok.id_to_token(i) not in specials]
    assert sorted(full.separation_map) == ordinary and full.vocab_size == tok.vocab_size + len(ordinary)
    for old, new in full.separation_map.items():
        assert full.id_to_token(new) == "[_DUP_]" + full.id_to_token(old)
    text = TEXTS[0]
    assert full.encode(text) == tok.encode(text)
    assert full.encode_code(text) == [full.separation_map.get(i, i) for i in tok.encode(text)]
    assert full.decode(full.encode_code(text)) == text

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("return\n函数\nfrobnicate\n", encoding="utf-8")
    partial = JiebaTokenizer.from_vocab(model, "partial", tokens)
    # sorted candidates, each bare and with ▁: a piece gets one twin, an unknown token two ids (itself, its twin)
    pieces = {t: sp.piece_to_id(t) for t in ("return", "\u2581return", "函数", "\u2581函数", "frobnicate",
                                               "\u2581frobnicate") if sp.piece_to_id(t) != sp.unk_id()}
    assert len(partial.separation_map) == 6
    assert partial.vocab_size == tok.vocab_size + 6 + (6 - len(pieces))
    for t in ("return", "\u2581return", "函数", "\u2581函数", "frobnicate", "\u2581frobnicate"):
        assert partial.separation_map[partial.token_to_id(t)] == partial.token_to_id("[_DUP_]" + t)
    code = "return frobnicate(函数)"
    assert partial.decode(partial.encode_code(code)) == code
    assert partial.encode("frobnicate") == [partial.token_to_id("frobnicate")]  # an added token: split out whole


def test_save_and_load_tokenizer_pick_the_jieba_kind(trained, tok, tmp_path):
    full = JiebaTokenizer.from_vocab(trained[1] / VOCAB_FILE, "full")
    full.save_pretrained(tmp_path / "full")
    assert json.loads((tmp_path / "full" / TOKENIZER_CONFIG_FILE).read_text()) == {"tokenizer_class": "JIEBATokenizer"}
    assert kind_of(tmp_path / "full") == "jieba" and kind_of(trained[1]) == "jieba"
    back = load_tokenizer(tmp_path / "full")
    assert type(back) is JiebaTokenizer and (back.separation, back.vocab_size, back.separation_map) == \
        ("full", full.vocab_size, full.separation_map)
    for text in TEXTS:
        assert back.encode_code(text) == full.encode_code(text)
    copy = pickle.loads(pickle.dumps(back))  # what prepare's worker processes receive
    assert copy.encode(TEXTS[3]) == tok.encode(TEXTS[3])
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json: key 'tokenizer_class' is 'JIEBATokenizer', "
                                             r"not 'PanguAlphaTokenizer' \(PanguTokenizer\); read the directory with"):
        PanguTokenizer.from_pretrained(tmp_path / "full")


def test_the_loader_still_reads_pangu_directories(pangu_vocab_model, tmp_path):
    PanguTokenizer.from_vocab(pangu_vocab_model).save_pretrained(tmp_path / "pangu")
    assert kind_of(tmp_path / "pangu") == "pangu"
    assert type(load_tokenizer(tmp_path / "pangu")) is PanguTokenizer
    os.remove(tmp_path / "pangu" / TOKENIZER_CONFIG_FILE)  # what a reference training run leaves: PanGu
    assert type(load_tokenizer(tmp_path / "pangu")) is PanguTokenizer


def test_unknown_kind_errors(trained, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / TOKENIZER_CONFIG_FILE).write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(TokenizerError, match=r"bad/tokenizer_config\.json: key 'tokenizer_class' is 'BertTokenizer', "
                                             r"which no tokenizer kind reads; expected one of 'PanguAlphaTokenizer' "
                                             r"\(kind pangu\), 'JIEBATokenizer' \(kind jieba\)"):
        load_tokenizer(bad)
    (bad / TOKENIZER_CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json: expected a JSON object"):
        load_tokenizer(bad)
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "nowhere")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'bpe'; expected one of pangu, jieba"):
        tokenizer_cls("bpe")
    with pytest.raises(SystemExit):
        cli.main(["tokenizer", "train", "--kind", "bpe", "--records", str(trained[0]), "--vocab-size", "300",
                  "--out", str(tmp_path / "x")])
    assert "invalid choice: 'bpe'" in capsys.readouterr().err


def test_training_input_is_the_jieba_joined_chunks(trained, sp, words):
    """The model was trained on what the encoder feeds SentencePiece: U+2582 and U+2583 are in its pieces, the
    markers are not (they were split out), full-width punctuation stays (identity normalisation)."""
    pieces = {sp.id_to_piece(i) for i in range(len(sp))}
    assert any("\u2582" in p for p in pieces) and any("\u2583" in p for p in pieces)
    assert not any("NEW_LINE" in p or "<" in p for p in pieces - {"<unk>", "<s>", "</s>", "<eod>", "<eot>", "<pad>"})
    assert "\uff0c" in sp.decode(sp.encode("\uff0c"))  # nmt_nfkc would give ","
    assert list(JiebaTokenizer.training_sentences("a b <NEW_LINE> <INDENT> 北京大学\n")) == [words("a b"),
                                                                                          words("北京大学")]


def test_jieba_is_lazy_quiet_and_caches_in_a_private_directory(tmp_path):
    script = ("import sys; import pangu_codeclm.tokenization.jieba as j; assert 'jieba' not in sys.modules; "
              "print(j.join_words('我们在北京大学学习'))")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "我们 在 北京大学 学习" and done.stderr == ""
    cache_dir = tmp_path / f"pangu-codeclm-jieba-{os.getuid()}"
    assert (cache_dir / "jieba.cache").is_file() and cache_dir.stat().st_mode & 0o777 == 0o700


def test_prepare_reads_a_jieba_directory(trained, tok):
    from pangu_codeclm.data.objectives import encode_pair
    from pangu_codeclm.data.records import iter_records

    records, directory = trained
    assert cli.main(["prepare", "--records", str(records), "--tokenizer", str(directory), "--objective", "code",
                     "--seq-length", "256", "--out", "data", "--workers", "2", "--quiet"]) == 0
    meta = json.load(open("data/meta.json"))
    expected = [encode_pair(tok, r["docstring"], r["code"], "code") for r in iter_records(str(records))]
    assert (meta["separation"], meta["vocab_size"], meta["samples"]) == ("none", 313, 600)
    assert meta["tokens"] == sum(len(s) for s in expected if len(s) <= 256)
