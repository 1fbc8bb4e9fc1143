"""The PyTorch reference module: HF key layout, mask semantics, restricted loss, greedy decoding."""
import numpy as np
import pytest
import torch

from pangu_codeclm.config import PanguCodeCLMConfig
from pangu_codeclm.families import family_for
from pangu_codeclm.convert.torch_model import TorchPanguCodeCLM, padded_position_ids, state_dict_from_numpy
from reference_numpy import restricted_ce

PAD, EOS = 62, 63
# Tiny separation maps over a 64-id vocabulary (ids 0, 1, 62, 63 stay shared in every map).
TINY_MAPS = {
    "none": {},
    "partial": {10: 56, 11: 57, 12: 58, 20: 59},
    "full": {i: i + 30 for i in range(2, 32)},
}


def tiny_case(separation, seed=0, std=0.3):
    """(config, separation map, numpy weights) of a tiny random model."""
    config = PanguCodeCLMConfig.preset(
        "tiny", vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, ffn_hidden_size=64,
        max_position_embeddings=32, seq_length=32, separation=separation, pad_token_id=PAD, eos_token_id=EOS)
    return config, TINY_MAPS[separation], family_for(config).random_weights(config, seed=seed, std=std)


def torch_model(config, mapping, weights):
    model = TorchPanguCodeCLM(config, mapping)
    model.load_state_dict(state_dict_from_numpy(weights), strict=True)
    return model.eval()


def test_state_dict_is_exactly_the_hf_layout():
    config, mapping, weights = tiny_case("partial")
    model = TorchPanguCodeCLM(config, mapping)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == family_for(config).shapes(config)
    assert "top_query_layer.attn.q_attn.weight" in shapes and shapes["top_query_layer.attn.c_attn.weight"] == (32, 64)
    assert not any(k.startswith("lm_head") or k.endswith("tokens_mask") for k in shapes)
    model.load_state_dict(state_dict_from_numpy(weights), strict=True)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict(state_dict_from_numpy({**weights, "code_tokens_mask": np.zeros(64, np.float32)}),
                              strict=True)
    # The head is tied: logits are h · wteᵀ, so changing wte changes the logits' column space directly.
    assert model.transformer.wte.weight.data_ptr() == model.state_dict()["transformer.wte.weight"].data_ptr()


def test_packed_rows_equal_separate_samples():
    config, mapping, weights = tiny_case("none")
    model = torch_model(config, mapping, weights)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 60, 5), rng.integers(0, 60, 7)
    ids = torch.tensor(np.concatenate([a, b])[None])
    may = np.zeros((12, 12), np.float32)
    may[:5, :5] = np.tril(np.ones((5, 5)))
    may[5:, 5:] = np.tril(np.ones((7, 7)))
    pos = torch.tensor(np.concatenate([np.arange(5), np.arange(7)])[None])
    with torch.no_grad():
        packed = model(ids, torch.tensor(may[None]), pos)[0]
        alone_a = model(torch.tensor(a[None]))[0]
        alone_b = model(torch.tensor(b[None]))[0]
    assert torch.allclose(packed[:5], alone_a, atol=1e-5)
    assert torch.allclose(packed[5:], alone_b, atol=1e-5)
    # Without the block-diagonal mask the second sample sees the first: the logits differ.
    with torch.no_grad():
        causal = model(ids, None, pos)[0]
    assert (causal[5:] - alone_b).abs().max() > 1e-3


def test_left_padding_matches_unpadded_with_padded_positions():
    config, mapping, weights = tiny_case("none")
    model = torch_model(config, mapping, weights)
    seq = torch.tensor([[5, 9, 14, 3]])
    padded = torch.tensor([[PAD, PAD, 5, 9, 14, 3]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        ref = model(seq)[0]
        out = model(padded, mask, padded_position_ids(mask))[0]
        wrong = model(padded, mask)[0]  # default positions 0..T-1 ignore the padding
    assert torch.allclose(out[2:], ref, atol=1e-5)
    assert (wrong[2:] - ref).abs().max() > 1e-3


@pytest.mark.parametrize("form", ["matrix", "index"])
def test_prefix_mask_is_bidirectional_over_the_prefix_only(form):
    config, mapping, weights = tiny_case("none")
    model = torch_model(config, mapping, weights)
    ids = torch.tensor([[7, 8, 9, 10, 11, 12]])
    changed_prefix = ids.clone()
    changed_prefix[0, 2] = 30
    changed_code = ids.clone()
    changed_code[0, 5] = 30
    if form == "matrix":
        prefix = torch.zeros(1, 6, 6)
        prefix[0, :3, :3] = 1
    else:
        prefix = torch.tensor([2])  # last prefix position
    with torch.no_grad():
        base = model(ids, prefix_lm_mask=prefix)[0]
        p = model(changed_prefix, prefix_lm_mask=prefix)[0]
        c = model(changed_code, prefix_lm_mask=prefix)[0]
        causal = model(changed_prefix)[0]
    assert (p[0] - base[0]).abs().max() > 1e-3  # position 0 sees position 2 in the prefix
    assert torch.allclose(c[:5], base[:5], atol=1e-6)  # nobody sees the last code token early
    assert torch.allclose(causal[:2], model(ids)[0][:2].detach(), atol=1e-6)  # causal: no look-ahead
    if form == "matrix":
        assert torch.allclose(p, model(changed_prefix, prefix_lm_mask=torch.tensor([2]))[0].detach(), atol=1e-6)


@pytest.mark.parametrize("separation", ["none", "partial", "full"])
def test_loss_matches_restricted_ce(separation):
    config, mapping, weights = tiny_case(separation)
    model = torch_model(config, mapping, weights)
    rng = np.random.default_rng(2)
    text_ids = [i for i in range(62) if i not in mapping.values()]
    code_ids = [i for i in range(62) if i not in mapping]
    doc = np.array([[1] * 5 + [0] * 7, [1] * 3 + [0] * 9])
    ids = np.where(doc == 1, rng.choice(text_ids, doc.shape), rng.choice(code_ids, doc.shape))
    labels = ids.copy()
    labels[0, :5] = -100  # Code CLM on row 0, Text-Code CLM on row 1
    labels[1, -2:] = -100
    with torch.no_grad():
        loss = model.loss(torch.tensor(ids), torch.tensor(labels), docstr_mask=torch.tensor(doc)).item()
        logits = model(torch.tensor(ids)).numpy()
    expected = restricted_ce(logits, labels, doc, mapping)
    assert abs(loss - expected) <= 1e-5 * abs(expected)
    if mapping:  # the restriction matters: the unrestricted CE is larger
        assert restricted_ce(logits, labels, doc, {}) > expected + 1e-4


@pytest.mark.parametrize("separation", ["none", "full"])
def test_greedy_pads_after_eos_and_stays_on_the_code_side(separation):
    config, mapping, weights = tiny_case(separation)
    model = torch_model(config, mapping, weights)
    ids = np.array([[PAD, 4, 5, 6], [7, 8, 9, 10]])
    mask = (ids != PAD).astype(np.int64)
    out = model.greedy_generate(ids, mask, max_new_tokens=6).numpy()
    assert out.shape[0] == 2 and 4 < out.shape[1] <= 10
    assert np.array_equal(out[:, :4], ids)
    # Each step is the argmax of a fresh forward over the grown sequence.
    grown_mask = np.concatenate([mask, np.ones((2, out.shape[1] - 4), np.int64)], 1)
    for step in range(4, out.shape[1]):
        with torch.no_grad():
            step_mask = torch.tensor(grown_mask[:, :step])
            logits = model(torch.tensor(out[:, :step]), step_mask, padded_position_ids(step_mask))[:, -1]
        if mapping:
            logits[:, list(mapping)] = float("-inf")
        for row in range(2):
            if EOS in out[row, 4:step]:
                assert out[row, step] == PAD
            else:
                assert out[row, step] == int(logits[row].argmax())
    if mapping:
        assert not set(out[:, 4:].ravel().tolist()) & set(mapping)
    # Declaring row 0's first generated token the eos: row 0 is padded after it, row 1 is unchanged until it too
    # emits that token, and decoding stops once both rows are done.
    eos = int(out[0, 4])
    stopped = model.greedy_generate(ids, mask, max_new_tokens=6, eos_token_id=eos).numpy()
    assert stopped[0, 4] == eos and (stopped[0, 5:] == PAD).all()
    row1 = out[1, 4:].tolist()
    cut = row1.index(eos) + 1 if eos in row1 else len(row1)
    assert stopped[1, 4:4 + cut].tolist() == row1[:cut]
    assert stopped.shape[1] == (4 + cut if eos in row1 else out.shape[1])


def test_dropout_only_in_train_mode():
    config, mapping, weights = tiny_case("none")
    model = torch_model(config, mapping, weights)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))
        model.train()
        torch.manual_seed(0)
        assert (model(ids) - model(ids)).abs().max() > 1e-3
