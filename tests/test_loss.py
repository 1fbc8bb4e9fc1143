"""ModalityMaskedCrossEntropy vs a numpy implementation of the shifted, modality-restricted cross-entropy."""
import numpy as np
import pytest

from pangu_codeclm.separation import modality_vocab_masks
from reference_numpy import restricted_ce

V = 61
SEP_MAP = {3: 50, 7: 51, 11: 52, 20: 53, 21: 54}  # text-side id -> code-side twin


def make_batch(seed, b=3, t=12):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3.0, (b, t, V)).astype(np.float32)
    docstr = np.zeros((b, t), np.int32)
    docstr[:, :5] = 1
    labels = np.empty((b, t), np.int32)
    code_ids = [i for i in range(V) if i not in SEP_MAP]       # code side: shared + map values
    text_ids = [i for i in range(V) if i not in SEP_MAP.values()]  # text side: shared + map keys
    for i in range(b):
        for j in range(t):
            labels[i, j] = rng.choice(text_ids if docstr[i, j] else code_ids)
    labels[0, 2] = 3      # a text-only id on the text side
    labels[1, 8] = 50     # a code-only id on the code side
    labels[:, 0] = 7      # never a target (shifted away)
    labels[2, 6:9] = -100
    labels[0, -1] = -100
    return logits, labels, docstr


def run_loss(logits, labels, docstr, separation_map):
    import mindspore as ms
    from pangu_codeclm.model import ModalityMaskedCrossEntropy
    code, text = modality_vocab_masks(separation_map, V)
    cell = ModalityMaskedCrossEntropy()
    d = None if docstr is None else ms.Tensor(docstr)
    return float(cell(ms.Tensor(logits), ms.Tensor(labels), d, ms.Tensor(code), ms.Tensor(text)).asnumpy())


@pytest.mark.parametrize("separation_map", [{}, SEP_MAP], ids=["empty-map", "separated"])
def test_matches_numpy(ms_cpu, separation_map):
    logits, labels, docstr = make_batch(0)
    got = run_loss(logits, labels, docstr, separation_map)
    want = restricted_ce(logits, labels, docstr, separation_map)
    assert got == pytest.approx(want, rel=1e-5)


def test_empty_map_is_plain_cross_entropy(ms_cpu):
    logits, labels, docstr = make_batch(1)
    z = logits[:, :-1].reshape(-1, V).astype(np.float64)
    y = labels[:, 1:].reshape(-1)
    keep = y != -100
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    plain = (lse - z[np.arange(len(y)), np.maximum(y, 0)])[keep].mean()
    assert run_loss(logits, labels, docstr, {}) == pytest.approx(plain, rel=1e-5)
    assert run_loss(logits, labels, None, {}) == pytest.approx(plain, rel=1e-5)


def test_restriction_changes_the_loss_and_ignored_labels_do_not_count(ms_cpu):
    logits, labels, docstr = make_batch(2)
    assert run_loss(logits, labels, docstr, SEP_MAP) < run_loss(logits, labels, docstr, {}) - 1e-3
    # an ignored target's logits do not matter
    changed = logits.copy()
    changed[2, 5:8] += 100.0
    assert run_loss(changed, labels, docstr, SEP_MAP) == pytest.approx(run_loss(logits, labels, docstr, SEP_MAP),
                                                                       rel=1e-6)
    # docstr_mask picks each target's side: flipping it changes the loss
    assert run_loss(logits, labels, 1 - docstr, SEP_MAP) != pytest.approx(
        run_loss(logits, labels, docstr, SEP_MAP), rel=1e-4)


def test_all_ignored_gives_zero(ms_cpu):
    logits, labels, docstr = make_batch(3)
    labels[:] = -100
    assert run_loss(logits, labels, docstr, SEP_MAP) == 0.0


def test_network_loss_uses_the_separation_map(ms_cpu):
    import mindspore as ms
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    cfg = PanguCodeCLMConfig(vocab_size=V, hidden_size=32, num_heads=4, ffn_hidden_size=64, num_layers=1,
                             max_position_embeddings=16, seq_length=12, embedding_dropout=0.0, hidden_dropout=0.0,
                             attention_dropout=0.0)
    net = PanguCodeCLMForCausalLM(cfg)
    net.set_train(False)
    _, labels, docstr = make_batch(4)
    ids = np.where(labels < 0, 1, labels).astype(np.int32)
    logits = net(ms.Tensor(ids)).asnumpy()
    args = dict(labels=ms.Tensor(labels), docstr_mask=ms.Tensor(docstr))
    plain = float(net(ms.Tensor(ids), **args).asnumpy())
    assert plain == pytest.approx(restricted_ce(logits, labels, docstr, {}), rel=1e-5)
    net.set_separation_map(SEP_MAP)
    separated = float(net(ms.Tensor(ids), **args).asnumpy())
    assert separated == pytest.approx(restricted_ce(logits, labels, docstr, SEP_MAP), rel=1e-5)
    assert separated < plain
    code, text = modality_vocab_masks(SEP_MAP, V)
    np.testing.assert_array_equal(net.code_vocab_mask.asnumpy(), code)
    np.testing.assert_array_equal(net.text_vocab_mask.asnumpy(), text)
    net.set_separation_map({})
    assert float(net(ms.Tensor(ids), **args).asnumpy()) == pytest.approx(plain, rel=1e-6)
