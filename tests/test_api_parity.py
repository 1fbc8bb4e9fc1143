"""`from_pretrained` on tiny random checkpoints: MindSpore vs the PyTorch module (logits, loss, greedy), save/load."""
import os

import numpy as np
import pytest
import torch

import pangu_codeclm
from pangu_codeclm.checkpoints import CheckpointError
from pangu_codeclm.checkpoints.hf import write_hf
from pangu_codeclm.families import family_for
from pangu_codeclm.convert.torch_model import padded_position_ids
from reference_numpy import restricted_ce
from test_torch_model import EOS, PAD, TINY_MAPS, tiny_case, torch_model

SEPARATIONS = ["none", "partial", "full"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Per separation: (MindSpore model loaded from an HF dir, PyTorch module on the same weights, weights)."""
    out = {}
    root = tmp_path_factory.mktemp("ckpts")
    for separation in SEPARATIONS:
        config, mapping, weights = tiny_case(separation, seed=3)
        write_hf(root / separation, config, weights, mapping)
        out[separation] = (pangu_codeclm.from_pretrained(root / separation), torch_model(config, mapping, weights),
                           weights)
    return out


def _ids(rng, shape, mapping, code=True):
    allowed = [i for i in range(62) if i not in (mapping if code else mapping.values())]
    return rng.choice(allowed, shape)


def _packed_batch(mapping, rng):
    """Two rows of T=12, each packing two samples: ids, may-attend [B,T,T], restarting positions, docstr mask."""
    lengths = [(5, 7), (8, 4)]
    ids = np.zeros((2, 12), np.int64)
    may = np.zeros((2, 12, 12), np.float32)
    pos = np.zeros((2, 12), np.int64)
    doc = np.zeros((2, 12), np.int64)
    for row, parts in enumerate(lengths):
        start = 0
        for n in parts:
            may[row, start:start + n, start:start + n] = np.tril(np.ones((n, n)))
            pos[row, start:start + n] = np.arange(n)
            doc[row, start:start + n // 2] = 1
            start += n
    ids = np.where(doc == 1, _ids(rng, ids.shape, mapping, code=False), _ids(rng, ids.shape, mapping))
    return ids, may, pos, doc


@pytest.mark.parametrize("separation", SEPARATIONS)
def test_logits_match_torch_for_packed_padded_and_prefix_masks(loaded, separation):
    model, reference, _ = loaded[separation]
    mapping = TINY_MAPS[separation]
    rng = np.random.default_rng(4)
    ids, may, pos, _ = _packed_batch(mapping, rng)
    with torch.no_grad():
        ref = reference(torch.tensor(ids), torch.tensor(may), torch.tensor(pos)).numpy()
    assert np.abs(model.logits(ids, may, pos) - ref).max() <= 1e-4

    padded = _ids(rng, (3, 9), mapping)
    mask = np.ones((3, 9), np.int64)
    mask[0, :4] = 0
    mask[1, :1] = 0
    padded[mask == 0] = PAD
    padded_pos = padded_position_ids(torch.tensor(mask))
    with torch.no_grad():
        ref = reference(torch.tensor(padded), torch.tensor(mask), padded_pos).numpy()
    got = model.logits(padded, mask, padded_pos.numpy())
    assert np.abs(got - ref).max() <= 1e-4
    assert np.abs(got[0, 4:] - model.logits(padded[:1, 4:])[0]).max() <= 1e-4  # padding is invisible

    prefix = np.zeros((2, 12, 12), np.float32)
    prefix[0, :5, :5] = 1
    prefix[1, :3, :3] = 1
    with torch.no_grad():
        ref = reference(torch.tensor(ids), prefix_lm_mask=torch.tensor(prefix)).numpy()
        causal = reference(torch.tensor(ids)).numpy()
    got = model.logits(ids, prefix_lm_mask=prefix)
    assert np.abs(got - ref).max() <= 1e-4
    assert np.abs(got[0, :4] - causal[0, :4]).max() > 1e-3  # the prefix block changes the prefix positions


@pytest.mark.parametrize("separation", SEPARATIONS)
def test_loss_matches_restricted_ce(loaded, separation):
    model, reference, _ = loaded[separation]
    mapping = TINY_MAPS[separation]
    ids, may, pos, doc = _packed_batch(mapping, np.random.default_rng(5))
    labels = ids.copy()
    labels[0][doc[0] == 1] = -100  # row 0: Code CLM, row 1: Text-Code CLM
    loss = model.loss(ids, labels, may, pos, doc)
    expected = restricted_ce(model.logits(ids, may, pos), labels, doc, mapping)
    assert abs(loss - expected) <= 1e-5 * abs(expected)
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(2, 12\) or \(2, 12, 12\)"):
        model.loss(ids, labels, may[:, :5])
    with pytest.raises(ValueError, match=r"docstr_mask: expected shape \(2, 12\)"):
        model.loss(ids, labels, may, pos, doc[:1])
    with torch.no_grad():
        ref = reference.loss(torch.tensor(ids), torch.tensor(labels), torch.tensor(may), torch.tensor(pos),
                             torch.tensor(doc)).item()
    assert abs(loss - ref) <= 1e-5 * abs(ref)


@pytest.mark.parametrize("separation", SEPARATIONS)
def test_greedy_generate_matches_torch(loaded, separation):
    model, reference, _ = loaded[separation]
    mapping = TINY_MAPS[separation]
    ids = _ids(np.random.default_rng(6), (2, 6), mapping)
    mask = np.ones((2, 6), np.int64)
    mask[1, :2] = 0
    ids[mask == 0] = PAD
    got = model.generate(ids, mask, max_new_tokens=8)
    ref = reference.greedy_generate(ids, mask, max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD).numpy()
    width = max(got.shape[1], ref.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=PAD)  # noqa: E731
    assert np.array_equal(pad(got), pad(ref))
    assert np.array_equal(got[:, :6], ids)
    if mapping:
        assert not set(got[:, 6:].ravel().tolist()) & set(mapping)


def test_save_pretrained_round_trips_both_layouts(loaded, tmp_path):
    model, _, weights = loaded["full"]
    model.save_pretrained(tmp_path / "ms", layout="mindspore")
    model.save_pretrained(tmp_path / "hf", layout="hf", write_bin=True)
    config, mapping, _ = tiny_case("full")
    state = torch.load(tmp_path / "hf" / "pytorch_model.bin", weights_only=True)
    torch_model(config, mapping, {k: v.numpy() for k, v in state.items()})  # strict load of the export
    again = pangu_codeclm.from_pretrained(tmp_path / "ms")
    for name, value in weights.items():
        assert np.array_equal(again.weights()[name], value), name
    assert again.separation_map == TINY_MAPS["full"]
    with pytest.raises(ValueError, match="layout: expected 'hf' or 'mindspore'"):
        model.save_pretrained(tmp_path / "x", layout="onnx")
    with pytest.raises(AttributeError, match=r"no tokenizer: .*has no vocab\.model"):
        model.tokenizer  # noqa: B018


def test_bad_checkpoints_build_nothing(tmp_path, monkeypatch):
    import pangu_codeclm.model.pangu as pangu

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built for a bad checkpoint")

    monkeypatch.setattr(pangu, "PanguCodeCLMForCausalLM", refuse)
    config, mapping, weights = tiny_case("partial")
    bad = dict(weights, **{"transformer.h.0.attn.c_proj.weight": np.zeros((32, 33), np.float32)})
    os.makedirs(tmp_path / "bad")
    config.save_hf_json(tmp_path / "bad" / "config.json")
    from safetensors.numpy import save_file
    save_file(bad, str(tmp_path / "bad" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"'transformer\.h\.0\.attn\.c_proj\.weight' has shape \(32, 33\)"):
        pangu_codeclm.from_pretrained(tmp_path / "bad")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        pangu_codeclm.from_pretrained(tmp_path / "missing")


def test_config_override_that_changes_shapes_is_refused(tmp_path):
    config, mapping, weights = tiny_case("none")
    write_hf(tmp_path / "d", config, weights, mapping)
    with pytest.raises(CheckpointError, match=r"network and checkpoint disagree: missing in the checkpoint "
                                                 r"\['transformer\.h\.2\."):
        pangu_codeclm.from_pretrained(tmp_path / "d", num_layers=3)


def test_tokenizer_travels_with_the_checkpoint_and_generate_cli_prints_python(pangu_vocab_model, python_tokens_file,
                                                                              tmp_path, capsys):
    from pangu_codeclm.cli import main as cli_main
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, separation="partial", separate_tokens_file=python_tokens_file)
    config, _, _ = tiny_case("partial")
    # A GPT-2 style config.json may carry foreign special ids: the tokenizer's win.
    config = config.replace(vocab_size=tok.vocab_size, eos_token_id=50256, pad_token_id=50256)
    write_hf(tmp_path / "hf", config, family_for(config).random_weights(config, seed=7, std=0.3), tok.separation_map, tok)
    assert cli_main(["convert", "--to", "mindspore", str(tmp_path / "hf"), str(tmp_path / "ms")]) == 0
    model = pangu_codeclm.from_pretrained(tmp_path / "ms")
    assert model.tokenizer.encode_code("def f(x): return x") == tok.encode_code("def f(x): return x")
    assert (model.config.eos_token_id, model.config.pad_token_id) == (tok.eot_id, tok.pad_id)
    assert model.separation_map == tok.separation_map and len(model.separation_map) == 348  # released partial
    capsys.readouterr()
    argv = ["generate", "--model", str(tmp_path / "ms"), "--prompt", "Add two numbers.", "--signature",
            "def add(a, b):", "--max-new-tokens", "5"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("def add(a, b):")
    assert "<NEW_LINE>" not in printed and "<INDENT>" not in printed
    sampled = argv + ["--temperature", "0.9", "--top-k", "5", "--seed", "3"]
    assert cli_main(sampled) == 0 and cli_main(sampled) == 0
    first, second = capsys.readouterr().out.split("def add(a, b):")[1:]
    assert first == second  # seeded sampling is reproducible
    # Decoding: markers become Python, everything after <eot> is dropped.
    from pangu_codeclm.infer.generate import completion_source
    body = tok.encode_code("<NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>") + [tok.eot_id, 7, 8]
    assert completion_source(tok, "def add(a, b):", body) == "def add(a, b):\n    return a + b\n"
    assert cli_main(["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "x"]) == 1
    assert "not a checkpoint directory" in capsys.readouterr().err
    os.remove(tmp_path / "ms" / "vocab.model")
    assert cli_main(argv) == 1
    assert "has no vocab.model" in capsys.readouterr().err
