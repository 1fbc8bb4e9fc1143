"""Prefix Code CLM at inference: KV-cache decoding with the bidirectional prompt prefix equals full recomputation
with the reference's prefix mask (paper's unshifted index and the corrected one); the model's objective survives
saving and loading and decides `--prefix-lm auto`; `logits(restrict_to_code=True)` is the reference's forward."""
import json

import numpy as np
import pytest

from conftest import random_network
from pangu_codeclm.evaluation import batching
from pangu_codeclm.infer.generate import (generate, generate_many, left_pad_positions, prefix_lm_enabled,
                                          prefix_lm_matrix)

V, MAX_POS, PAD, PYTHON = 97, 48, 0, 5
BUCKETS = dict(prompt_bucket=8, cache_bucket=16)


@pytest.fixture(scope="module")
def net(ms_cpu):
    return random_network(seed=3, vocab_size=V, hidden_size=32, num_heads=4, ffn_hidden_size=64, num_layers=2,
                          max_position_embeddings=MAX_POS, seq_length=32, pad_token_id=PAD, objective="prefix_code")


def prompts():
    """Three prompts of different lengths, `<python>` (id 5) at index 4, 2 and 6."""
    rng = np.random.default_rng(11)
    rows = []
    for length, python_at in ((9, 4), (5, 2), (12, 6)):
        row = rng.integers(6, V, length).tolist()
        row[python_at] = PYTHON
        rows.append(row)
    return rows, [4, 2, 6]


def full_recompute_logits(network, out, prompt_mask, prefix_index):
    """Logits of every position of prompt + generation in one forward pass, with the reference's prefix mask
    (keys <= index visible to every query, ORed into the causal mask) in the batch's own coordinates."""
    import mindspore as ms
    new = out.shape[1] - prompt_mask.shape[1]
    mask = np.concatenate([prompt_mask, np.ones((out.shape[0], new))], 1).astype(np.float32)
    logits = network(ms.Tensor(out.astype(np.int32)), position_ids=ms.Tensor(left_pad_positions(mask)),
                     attention_mask=ms.Tensor(mask),
                     prefix_lm_mask=ms.Tensor(prefix_lm_matrix(prefix_index, out.shape[1])))
    return logits.asnumpy()


@pytest.mark.parametrize("mode", ["paper", "corrected"])
def test_cached_prefix_decoding_equals_full_recomputation(net, mode):
    rows, python_at = prompts()
    batch = batching.collate(rows, python_at, PAD, mode, max_length=MAX_POS, max_new_tokens=6)
    if mode == "corrected":  # the shifted index is <python> in the padded batch
        assert [batch.input_ids[r, i] for r, i in enumerate(batch.prefix_index)] == [PYTHON] * 3
    else:  # G4: unshifted, it points into the padding or the text of the padded rows
        np.testing.assert_array_equal(batch.prefix_index, python_at)
    steps = 6
    out, scores = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=steps, return_scores=True,
                           prefix_index=batch.prefix_index, **BUCKETS)
    assert out.shape == (3, batch.padded_length + steps)
    reference = full_recompute_logits(net, out, batch.attention_mask, batch.prefix_index)
    width = batch.padded_length
    for i, step_logits in enumerate(scores):
        np.testing.assert_allclose(step_logits, reference[:, width - 1 + i], atol=1e-5, rtol=0)
    baseline, baseline_scores = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=steps,
                                         return_scores=True, prefix_index=batch.prefix_index, use_cache=False,
                                         **BUCKETS)
    np.testing.assert_array_equal(baseline, out)
    for a, b in zip(scores, baseline_scores):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # the prefix matters: without it the logits of the rows it covers differ
    _, causal = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=1, return_scores=True,
                         **BUCKETS)
    covered = batch.prefix_index >= batch.left_padding
    assert covered.any()
    assert np.abs(causal[0][covered] - scores[0][covered]).max() > 1e-3


def test_paper_and_corrected_prefixes_differ_only_on_padded_rows(net):
    rows, python_at = prompts()
    results = {}
    for mode in ("paper", "corrected"):
        batch = batching.collate(rows, python_at, PAD, mode, max_length=MAX_POS, max_new_tokens=1)
        _, results[mode] = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=1,
                                    return_scores=True, prefix_index=batch.prefix_index, **BUCKETS)
    unpadded = batch.left_padding == 0
    np.testing.assert_allclose(results["paper"][0][unpadded], results["corrected"][0][unpadded], atol=1e-5)
    assert np.abs(results["paper"][0][~unpadded] - results["corrected"][0][~unpadded]).max() > 1e-3


def test_extra_left_padding_does_not_change_prefix_decoding(net):
    """generate re-packs rows into its own buckets: the prefix covers the same real tokens there."""
    rows, python_at = prompts()
    batch = batching.collate(rows, python_at, PAD, "corrected", max_length=MAX_POS, max_new_tokens=5)
    base = generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=5, prefix_index=batch.prefix_index,
                    **BUCKETS)
    extra = np.concatenate([np.full((3, 7), PAD), batch.input_ids], 1)
    extra_mask = np.concatenate([np.zeros((3, 7), np.int64), batch.attention_mask], 1)
    padded = generate(net, extra, extra_mask, max_new_tokens=5, prefix_index=batch.prefix_index + 7,
                      prompt_bucket=16, cache_bucket=32)
    np.testing.assert_array_equal(padded[:, 7:], base)
    with pytest.raises(ValueError, match="prefix_index: expected one index per row"):
        generate(net, batch.input_ids, batch.attention_mask, max_new_tokens=1, prefix_index=[1, 2])


def test_prefix_lm_setting_follows_the_objective():
    from pangu_codeclm.config import PanguCodeCLMConfig
    prefix = PanguCodeCLMConfig.preset("tiny", objective="prefix_code")
    causal = PanguCodeCLMConfig.preset("tiny")
    assert prefix_lm_enabled("auto", prefix) and not prefix_lm_enabled("auto", causal)
    assert prefix_lm_enabled("on", causal) and not prefix_lm_enabled("off", prefix)
    assert not prefix_lm_enabled("auto", None)  # a model without a config (e.g. a stand-in) decodes causally
    with pytest.raises(ValueError, match="prefix_lm: expected one of auto, on, off"):
        prefix_lm_enabled("yes", prefix)


def test_objective_survives_save_and_load(tmp_path):
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.checkpoints import read_checkpoint, read_config
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.checkpoints.mindspore_dir import write_mindspore
    from pangu_codeclm.families import family_for
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=64, objective="prefix_code")
    weights = family_for(config).random_weights(config, seed=0)
    write_hf(tmp_path / "hf", config, weights)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["objective"] == "prefix_code"
    assert read_checkpoint(tmp_path / "hf").config.objective == "prefix_code"
    write_mindspore(tmp_path / "ms", config, weights)
    assert read_checkpoint(tmp_path / "ms").config.objective == "prefix_code"
    # a released config.json has no objective: a `*-prefix-*` directory is a prefix model, as geneval.sh decides
    for name, objective in (("pangu-CodeCLM-prefix-full-300m", "prefix_code"), ("pangu-CodeCLM-full-300m", "code")):
        path = tmp_path / name
        path.mkdir()
        raw = config.to_hf_dict()
        del raw["objective"]
        (path / "config.json").write_text(json.dumps(raw))
        assert read_config(path).objective == objective


def test_logits_restricted_to_code_like_the_reference_forward(tmp_path, ms_cpu):
    from pangu_codeclm.api import from_pretrained
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.families import family_for
    mapping = {10: 40, 11: 41, 12: 42}
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=48, separation="partial", max_position_embeddings=16,
                                       seq_length=16)
    write_hf(tmp_path / "ckpt", config, family_for(config).random_weights(config, seed=2), mapping)
    model = from_pretrained(tmp_path / "ckpt")
    ids = np.array([[1, 2, 3, 4, 5]])
    free = model.logits(ids)
    restricted = model.logits(ids, restrict_to_code=True)
    text_only = sorted(mapping)
    assert np.isneginf(restricted[..., text_only]).all() and np.isfinite(free[..., text_only]).all()
    keep = np.setdiff1d(np.arange(48), text_only)
    np.testing.assert_array_equal(restricted[..., keep], free[..., keep])
    # the index form of the prefix mask equals its [B,T,T] matrix
    np.testing.assert_array_equal(model.logits(ids, prefix_lm_mask=[2]),
                                  model.logits(ids, prefix_lm_mask=prefix_lm_matrix([2], 5)))
    assert np.abs(model.logits(ids, prefix_lm_mask=[2]) - free).max() > 1e-4


def test_corrected_mode_continuous_batching_equals_its_batches(net):
    rows, python_at = prompts()
    max_length, max_new = 20, 10
    padded = batching.collate(rows, python_at, PAD, "corrected", max_length, max_new)
    out = generate(net, padded.input_ids, padded.attention_mask, max_new_tokens=int(padded.budgets.max()),
                   prefix_index=padded.prefix_index, **BUCKETS)
    eos = int(out[0, padded.padded_length + 2])  # cuts some row short
    out = generate(net, padded.input_ids, padded.attention_mask, max_new_tokens=int(padded.budgets.max()),
                   prefix_index=padded.prefix_index, eos_token_id=eos, **BUCKETS)
    batched = [batching.generated_ids(out[r, padded.padded_length:], int(padded.budgets[r]), eos) for r in range(3)]
    prompt_ids, budgets, index = batching.continuous_rows(rows, python_at, max_length, max_new)
    assert budgets.tolist() == padded.budgets.tolist() == [10, 10, 8]
    assert generate_many(net, prompt_ids, max_new_tokens=budgets, batch_size=2, eos_token_id=eos,
                         prefix_index=index, **BUCKETS) == batched
    assert len(batched[0]) <= 3
