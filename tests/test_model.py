"""The MindSpore network: HF parameter names/shapes and logits vs an independent numpy PanGu-Alpha forward."""
import math

import numpy as np
import pytest

from pangu_codeclm.config import PanguCodeCLMConfig

V, E, H, F, L, P = 97, 32, 4, 64, 2, 32


def tiny_config(**overrides):
    values = dict(vocab_size=V, hidden_size=E, num_heads=H, ffn_hidden_size=F, num_layers=L,
                  max_position_embeddings=P, seq_length=16, embedding_dropout=0.0, hidden_dropout=0.0,
                  attention_dropout=0.0)
    values.update(overrides)
    return PanguCodeCLMConfig(**values)


def expected_hf_shapes(v, e, f, n_layers, positions):
    shapes = {"transformer.wte.weight": (v, e), "transformer.wpe.weight": (positions, e),
              "transformer.ln_f.weight": (e,), "transformer.ln_f.bias": (e,),
              "top_query_embedding.weight": (positions, e)}

    def block(prefix, top):
        out = {f"{prefix}.ln_1.weight": (e,), f"{prefix}.ln_1.bias": (e,), f"{prefix}.ln_2.weight": (e,),
               f"{prefix}.ln_2.bias": (e,), f"{prefix}.attn.c_proj.weight": (e, e), f"{prefix}.attn.c_proj.bias": (e,),
               f"{prefix}.mlp.c_fc.weight": (e, f), f"{prefix}.mlp.c_fc.bias": (f,),
               f"{prefix}.mlp.c_proj.weight": (f, e), f"{prefix}.mlp.c_proj.bias": (e,)}
        width = 2 * e if top else 3 * e
        out[f"{prefix}.attn.c_attn.weight"] = (e, width)
        out[f"{prefix}.attn.c_attn.bias"] = (width,)
        if top:
            out[f"{prefix}.attn.q_attn.weight"] = (e, e)
            out[f"{prefix}.attn.q_attn.bias"] = (e,)
        return out

    for i in range(n_layers):
        shapes.update(block(f"transformer.h.{i}", False))
    shapes.update(block("top_query_layer", True))
    return shapes


def randomize(net, seed=0):
    """Give every HF parameter random values (LN too, so the test sees their use) and return them as numpy."""
    import mindspore as ms
    from pangu_codeclm.model import NON_HF_PARAMETERS
    rng = np.random.default_rng(seed)
    weights = {}
    for name, param in net.parameters_and_names():
        if name in NON_HF_PARAMETERS:
            continue
        value = rng.normal(0.0, 0.3, param.shape).astype(np.float32)
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            value += 1.0
        param.set_data(ms.Tensor(value))
        weights[name] = value
    return weights


# ---------------------------------------------------------------------- numpy reference (DESIGN.md, PanGu-Alpha)
def _ln(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _attend(q, k, v, may, add, heads):
    b, t, e = q.shape
    d = e // heads
    split = lambda x: x.reshape(b, -1, heads, d).transpose(0, 2, 1, 3)
    s = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(d)
    s = np.where(may[:, None] > 0, s, -1e4) + add[:, None]
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return (p @ split(v)).transpose(0, 2, 1, 3).reshape(b, t, e)


def numpy_forward(w, ids, pos, may, add, n_layers, heads):
    """logits of PanGu-Alpha; may [B,T,T] may-attend, add [B,T,T] additive."""
    def lin(x, name):
        return x @ w[name + ".weight"] + w[name + ".bias"]

    def mlp(x, prefix):
        return lin(_gelu(lin(x, prefix + ".mlp.c_fc")), prefix + ".mlp.c_proj")

    e = w["transformer.wte.weight"].shape[1]
    h = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][pos]
    for i in range(n_layers):
        p = f"transformer.h.{i}"
        a = _ln(h, w[p + ".ln_1.weight"], w[p + ".ln_1.bias"])
        q, k, v = np.split(lin(a, p + ".attn.c_attn"), 3, axis=-1)
        h = h + lin(_attend(q, k, v, may, add, heads), p + ".attn.c_proj")
        h = h + mlp(_ln(h, w[p + ".ln_2.weight"], w[p + ".ln_2.bias"]), p)
    h = _ln(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"])
    p = "top_query_layer"
    a = _ln(h, w[p + ".ln_1.weight"], w[p + ".ln_1.bias"])
    k, v = np.split(lin(a, p + ".attn.c_attn"), 2, axis=-1)
    q = lin(w["top_query_embedding.weight"][pos], p + ".attn.q_attn")
    assert q.shape[-1] == e
    h = h + lin(_attend(q, k, v, may, add, heads), p + ".attn.c_proj")
    h = h + mlp(_ln(h, w[p + ".ln_2.weight"], w[p + ".ln_2.bias"]), p)
    return h @ w["transformer.wte.weight"].T


# ---------------------------------------------------------------------- tests
def test_parameter_names_and_shapes_are_the_hf_keys(ms_cpu):
    from pangu_codeclm.model import NON_HF_PARAMETERS, PanguCodeCLMForCausalLM
    net = PanguCodeCLMForCausalLM(tiny_config())
    got = {name: tuple(p.shape) for name, p in net.parameters_and_names() if name not in NON_HF_PARAMETERS}
    assert got == expected_hf_shapes(V, E, F, L, P)
    # parameter objects carry the same names (what checkpoints save)
    assert {p.name for p in net.get_parameters()} == set(got) | set(NON_HF_PARAMETERS)
    assert {p.name for p in net.trainable_params()} == set(got)


def test_registered_with_mindformers():
    from mindformers.tools.register import MindFormerModuleType, MindFormerRegister
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    assert MindFormerRegister.get_cls(MindFormerModuleType.MODELS, "PanguCodeCLMForCausalLM") \
        is PanguCodeCLMForCausalLM
    assert PanguCodeCLMForCausalLM.config_class is PanguCodeCLMConfig


@pytest.fixture(scope="module")
def net_and_weights(ms_cpu):
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    net = PanguCodeCLMForCausalLM(tiny_config())
    net.set_train(False)
    return net, randomize(net)


def _check(net, w, ids, expected_may, expected_add, pos, real=None, **kwargs):
    """Compare with the numpy forward on the real (non-padding) positions."""
    import mindspore as ms
    args = {k: ms.Tensor(v) for k, v in kwargs.items()}
    logits = net(ms.Tensor(ids), **args).asnumpy()
    assert logits.dtype == np.float32 and logits.shape == ids.shape + (V,)
    ref = numpy_forward(w, ids, pos, expected_may, expected_add, L, H)
    real = np.ones(ids.shape, bool) if real is None else real
    np.testing.assert_allclose(logits[real], ref[real], atol=1e-4, rtol=1e-4)
    return logits


def test_causal_logits_match_numpy_and_default_positions(net_and_weights):
    net, w = net_and_weights
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, (2, 12)).astype(np.int32)
    t = ids.shape[1]
    causal = np.broadcast_to(np.tril(np.ones((t, t))), (2, t, t))
    pos = np.broadcast_to(np.arange(t), (2, t))
    logits = _check(net, w, ids, causal, np.zeros((2, t, t)), pos)
    # causality: changing a later token leaves earlier logits unchanged
    ids2 = ids.copy()
    ids2[:, 8] = (ids2[:, 8] + 1) % V
    import mindspore as ms
    logits2 = net(ms.Tensor(ids2)).asnumpy()
    np.testing.assert_array_equal(logits2[:, :8], logits[:, :8])
    assert np.abs(logits2[:, 8:] - logits[:, 8:]).max() > 1e-3


def test_packed_3d_mask_and_restarting_positions(net_and_weights):
    net, w = net_and_weights
    rng = np.random.default_rng(2)
    t = 10
    ids = rng.integers(0, V, (2, t)).astype(np.int32)
    lengths = [(4, 6), (7, 3)]
    may = np.zeros((2, t, t), np.float32)
    pos = np.zeros((2, t), np.int32)
    for b, parts in enumerate(lengths):
        start = 0
        for n in parts:
            may[b, start:start + n, start:start + n] = np.tril(np.ones((n, n)))
            pos[b, start:start + n] = np.arange(n)
            start += n
    logits = _check(net, w, ids, may, np.zeros((2, t, t)), pos, attention_mask=may, position_ids=pos)
    # the second packed sample equals that sample run on its own
    import mindspore as ms
    alone = net(ms.Tensor(ids[:1, 4:])).asnumpy()
    np.testing.assert_allclose(logits[:1, 4:], alone, atol=1e-5)


def test_left_padded_2d_mask(net_and_weights):
    net, w = net_and_weights
    rng = np.random.default_rng(3)
    t = 9
    ids = rng.integers(0, V, (2, t)).astype(np.int32)
    mask = np.ones((2, t), np.float32)
    mask[0, :3] = 0
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0).astype(np.int32)
    pos[mask == 0] = 1
    causal = np.broadcast_to(np.tril(np.ones((t, t))), (2, t, t))
    add = np.broadcast_to(((1 - mask) * -1e4)[:, None, :], (2, t, t))
    logits = _check(net, w, ids, causal, add, pos, real=mask > 0, attention_mask=mask, position_ids=pos)
    import mindspore as ms
    unpadded = net(ms.Tensor(ids[:1, 3:])).asnumpy()
    np.testing.assert_allclose(logits[0, 3:], unpadded[0], atol=1e-5)


def test_prefix_lm_mask_is_ored_into_causal(net_and_weights):
    net, w = net_and_weights
    rng = np.random.default_rng(4)
    t = 8
    ids = rng.integers(0, V, (1, t)).astype(np.int32)
    prefix = np.zeros((1, t, t), np.float32)
    prefix[0, :4, :4] = 1.0
    causal = np.tril(np.ones((t, t)))[None]
    pos = np.arange(t)[None]
    logits = _check(net, w, ids, np.maximum(causal, prefix), np.zeros((1, t, t)), pos, prefix_lm_mask=prefix)
    import mindspore as ms
    plain = net(ms.Tensor(ids)).asnumpy()
    assert np.abs(plain[0, 0] - logits[0, 0]).max() > 1e-3  # position 0 now sees the prefix


def test_dropout_only_in_training(ms_cpu):
    import mindspore as ms
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    net = PanguCodeCLMForCausalLM(tiny_config(embedding_dropout=0.5, hidden_dropout=0.5, attention_dropout=0.5))
    ids = ms.Tensor(np.arange(12, dtype=np.int32).reshape(2, 6))
    net.set_train(False)
    a, b = net(ids).asnumpy(), net(ids).asnumpy()
    np.testing.assert_array_equal(a, b)
    net.set_train(True)
    c = net(ids).asnumpy()
    assert np.abs(c - a).max() > 1e-4


def test_fp16_compute_close_to_fp32(net_and_weights):
    import mindspore as ms
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    net, w = net_and_weights
    half = PanguCodeCLMForCausalLM(tiny_config(compute_dtype="float16"))
    half.set_train(False)
    for name, param in half.parameters_and_names():
        if name in w:
            param.set_data(ms.Tensor(w[name] * 0.3))
    for name, param in net.parameters_and_names():
        if name in w:
            param.set_data(ms.Tensor(w[name] * 0.3))
    ids = ms.Tensor(np.arange(16, dtype=np.int32).reshape(2, 8))
    lo, hi = half(ids).asnumpy(), net(ids).asnumpy()
    for name, param in net.parameters_and_names():  # restore for the other tests
        if name in w:
            param.set_data(ms.Tensor(w[name]))
    assert lo.dtype == np.float32
    assert not np.array_equal(lo, hi)  # really computed in fp16
    np.testing.assert_allclose(lo, hi, atol=0.05 * np.abs(hi).max())


def test_bfloat16_is_refused_on_cpu_with_the_key(ms_cpu):
    from pangu_codeclm.config import ConfigError
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    cfg = PanguCodeCLMConfig.preset("tiny", vocab_size=64, compute_dtype="bfloat16")
    with pytest.raises(ConfigError, match="'compute_dtype': bfloat16 is not supported on the CPU backend"):
        PanguCodeCLMForCausalLM(cfg)


def test_q_apart_from_k_v_at_many_rows_matches_numpy_and_the_one_product(net_and_weights):
    """From BLOCK_MIN_ROWS rows on, CPU computes c_attn's q and k|v columns as two matmuls (MindSpore's CPU MatMul is
    slow at 3E columns): same logits as the numpy forward and as the one product."""
    import mindspore as ms
    from pangu_codeclm.model.layers import BLOCK_MIN_ROWS
    net, w = net_and_weights
    attention = net.transformer.h[0].attn
    assert attention.q_apart
    rng = np.random.default_rng(5)
    ids = rng.integers(0, V, (4, 24)).astype(np.int32)
    assert ids.size >= BLOCK_MIN_ROWS
    t = ids.shape[1]
    causal = np.broadcast_to(np.tril(np.ones((t, t))), (4, t, t))
    apart = _check(net, w, ids, causal, np.zeros((4, t, t)), np.broadcast_to(np.arange(t), (4, t)))
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    whole = PanguCodeCLMForCausalLM(tiny_config())  # a fresh network: a compiled graph keeps its cell attributes
    whole.set_train(False)
    for block in whole.transformer.h:
        block.attn.q_apart = False
    randomize(whole)
    np.testing.assert_allclose(apart, whole(ms.Tensor(ids)).asnumpy(), atol=1e-5, rtol=1e-5)
