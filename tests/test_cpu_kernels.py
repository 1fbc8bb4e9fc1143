"""Fused CPU kernels (model/cpu_kernels): values and gradients equal MindSpore's plain ops, dynamic shapes, the
decode attention (its in-place cache writes, the window), the strip matmuls and the strip order of the weights, the network's logits and greedy
decoding with and without them, the build cache and the fallback without a compiler."""
import logging
import math
import os
import shutil

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from conftest import random_network
from pangu_codeclm.checkpoints.load import checkpoint_parameters
from pangu_codeclm.infer.generate import decoder_for, generate
from pangu_codeclm.model import cpu_kernels


# the vector unit each build may use (PANGU_CODECLM_KERNEL_ISA) and what the library then reports
def expected_simd_bits(isa):
    flags = set(cpu_kernels._cpu_signature().split())  # the CPU's model and feature flags, as the build key has them
    best = 512 if "avx512f" in flags else 256 if {"avx2", "fma"} <= flags else 0
    return {"native": best, "avx2": min(best, 256), "scalar": 0}[isa]


@pytest.fixture(scope="module", params=["native", "avx2", "scalar"])
def fused(request, ms_cpu):
    """The kernels built for the CPU's best vector unit, then for AVX2 and for none (what CPUs without AVX-512 or
    without AVX2 run), each where it differs from the builds before it."""
    compiler = os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler {compiler!r}: the network runs its plain ops")
    isa = request.param
    if isa != "native" and expected_simd_bits(isa) == expected_simd_bits("native"):
        pytest.skip(f"the {isa} build is this CPU's native one")
    previous = os.environ.get(cpu_kernels.ISA_ENV)
    os.environ[cpu_kernels.ISA_ENV] = isa
    cpu_kernels.reset()
    try:
        found = cpu_kernels.fused_ops()
        if found is None:
            pytest.fail(f"the fused CPU kernels did not build with {compiler} for {isa} (see the warning above)")
        assert found.simd_bits == expected_simd_bits(isa), f"{isa}: built for {found.simd_bits} bits"
        yield found
    finally:
        if previous is None:
            os.environ.pop(cpu_kernels.ISA_ENV, None)
        else:
            os.environ[cpu_kernels.ISA_ENV] = previous
        cpu_kernels.reset()


def plain_gelu(x, bias):
    v = x + bias
    return 0.5 * v * (1.0 + ops.erf(v / math.sqrt(2.0)))


def plain_layer_norm(x, gamma, beta, eps):
    y, _, _ = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)(x, gamma, beta)
    return y


def as_cell(fn, dynamic_args=None):
    """fn as a graph-mode Cell; `dynamic_args`: input placeholders for a dynamic-shape graph."""

    class Wrapped(nn.Cell):
        def construct(self, *args):
            return fn(*args)

    cell = Wrapped()
    if dynamic_args is not None:
        cell.set_inputs(*dynamic_args)
    return cell


def fused_cells(network):
    """How many of the network's cells run a fused kernel."""
    return sum(getattr(cell, "fused_gelu", None) is not None or getattr(cell, "fused_norm", None) is not None
               for _, cell in network.cells_and_names())


class WithCaches(nn.Cell):
    """An attention kernel over cache Parameters k, v: called with (q, kv, the kernel's other inputs)."""

    def __init__(self, kernel, k, v):
        super().__init__()
        self.kernel = kernel
        self.k = ms.Parameter(ms.Tensor(k), name="k_cache", requires_grad=False)
        self.v = ms.Parameter(ms.Tensor(v), name="v_cache", requires_grad=False)

    def construct(self, q, kv, *rest):
        return self.kernel(q, kv, self.k, self.v, *rest)


def tensors(*arrays):
    return [ms.Tensor(a) for a in arrays]


def test_bias_gelu_equals_the_exact_erf_gelu_on_dynamic_shapes(fused):
    rng = np.random.default_rng(0)
    bias = (rng.standard_normal(96) * 0.5).astype(np.float32)
    placeholders = (ms.Tensor(shape=[None, None, 96], dtype=ms.float32), ms.Tensor(shape=[96], dtype=ms.float32))
    ours, plain = as_cell(fused.bias_gelu, placeholders), as_cell(plain_gelu, placeholders)
    for rows in (1, 7, 300):  # one graph, three lengths (300 rows split over threads)
        x = (rng.standard_normal((2, rows, 96)) * 4).astype(np.float32)
        x[0, 0, :6] = [0.0, -0.0, 1e-30, -12.0, 12.0, -3.5]
        got, want = (cell(*tensors(x, bias)).asnumpy() for cell in (ours, plain))
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    assert ours(*tensors(np.full((1, 1, 96), -30.0, np.float32), bias)).asnumpy().max() <= 0.0


def test_layer_norm_equals_mindspores_layer_norm(fused):
    rng = np.random.default_rng(1)
    width, eps = 64, 1e-5
    gamma = (1 + 0.1 * rng.standard_normal(width)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(width)).astype(np.float32)
    x = (rng.standard_normal((3, 50, width)) * 3 + 5).astype(np.float32)
    got = as_cell(fused.layer_norm)(*tensors(x, gamma, beta, np.array([eps], np.float32))).asnumpy()

    def plain(a, g, b):
        return plain_layer_norm(a, g, b, eps)

    want = as_cell(plain)(*tensors(x, gamma, beta)).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    assert not np.allclose(got, x)  # it normalised


def test_gradients_equal_those_of_the_plain_ops(fused):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((5, 32)) * 2).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(32)).astype(np.float32)
    eps = np.array([1e-5], np.float32)
    weight = ms.Tensor(rng.standard_normal((5, 32)).astype(np.float32))  # a non-uniform upstream gradient

    def grads(fn, *args):
        def loss(a, b):
            return (fn(a, b) * weight).sum()

        return [g.asnumpy() for g in ops.grad(loss, grad_position=(0, 1))(*args)]

    for got, want in zip(grads(fused.bias_gelu, *tensors(x, bias)), grads(plain_gelu, *tensors(x, bias))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    norm_args = tensors(x, gamma)
    beta_t, eps_t = tensors(np.zeros(32, np.float32), eps)

    def fused_norm(a, g):
        return fused.layer_norm(a, g, beta_t, eps_t)

    def plain_norm(a, g):
        return plain_layer_norm(a, g, beta_t, 1e-5)

    got, want = grads(fused_norm, *norm_args), grads(plain_norm, *norm_args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window", [24, 40], ids=["window-inside-the-cache", "whole-cache"])
@pytest.mark.parametrize("top_query", [False, True], ids=["q|k|v", "q-apart-from-k|v"])
@pytest.mark.parametrize("dim", [8, 64], ids=["dim-8", "dim-64-in-registers"])
def test_decode_attention_writes_the_caches_in_place_and_attends_the_window(fused, window, top_query, dim):
    from pangu_codeclm.model.layers import MASK_VALUE
    batch, heads, slots = 3, 2, 40
    width, rows = heads * dim, batch * heads
    rng = np.random.default_rng(5)
    qkv = rng.standard_normal((batch, 3 * width)).astype(np.float32)
    q_src, kv_src = (qkv[:, :width].copy(), qkv[:, width:].copy()) if top_query else (qkv, qkv)
    k, v = (rng.standard_normal((rows, slots, dim)).astype(np.float32) for _ in range(2))
    row_slot, writes = np.array([5, 5, 9]), np.array([True, False, True])  # batch row 1 does not write
    distinct = np.array([5, 9], np.int32)
    onehot = np.zeros((rows, 2, 1), np.float32)
    for b in range(batch):
        onehot[b * heads:(b + 1) * heads, list(distinct).index(row_slot[b])] = writes[b]
    k[:, distinct], v[:, distinct] = 0.0, 0.0  # slots are zero until written (prefill resets the rows)
    may = (rng.random((rows, 1, window)) < 0.6).astype(np.float32)
    may[np.arange(rows), 0, np.repeat(row_slot, heads)] = 1.0  # every row attends its own slot
    bias = (may - 1) * MASK_VALUE
    new = qkv.reshape(batch, 3, heads, dim)
    k_want, v_want = k.copy(), v.copy()
    for r in range(rows):
        if writes[r // heads]:
            k_want[r, row_slot[r // heads]] = new[r // heads, 1, r % heads]
            v_want[r, row_slot[r // heads]] = new[r // heads, 2, r % heads]
    for cache in (k, v, k_want, v_want):  # slots outside the window, and keys and values a row may not attend, are
        cache[:, window:] = np.nan        # not read ...
        cache[:, :window][may[:, 0, :] == 0] = np.nan
    scale = 1 / math.sqrt(dim)
    q = new[:, 0].reshape(rows, 1, dim)
    scores = np.einsum("rqd,rsd->rqs", q, np.nan_to_num(k_want[:, :window])) * scale * may + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    want = np.einsum("rqs,rsd->rqd", probs / probs.sum(-1, keepdims=True), np.nan_to_num(v_want[:, :window]))

    step = WithCaches(fused.decode_attention, k, v)
    got = step(*tensors(q_src, kv_src, distinct, onehot, may, bias, np.full(heads, scale, np.float32))).asnumpy()
    assert got.shape == (batch, width) and not np.isnan(got).any()  # ... so the NaNs change nothing
    np.testing.assert_allclose(got, want.reshape(batch, width), rtol=1e-5, atol=1e-5)  # heads merged
    np.testing.assert_array_equal(step.k.asnumpy(), k_want)  # the new keys and values at their slots, in place
    np.testing.assert_array_equal(step.v.asnumpy(), v_want)


@pytest.mark.parametrize("mask_heads", [1, 2], ids=["one-mask", "a-mask-per-head"])
@pytest.mark.parametrize("dim", [8, 64], ids=["dim-8", "dim-64-in-registers"])
def test_prefill_attention_resets_the_cache_rows_in_place_and_attends_causally(fused, mask_heads, dim):
    from pangu_codeclm.model.layers import MASK_VALUE
    batch, heads, seq, slots = 2, 2, 7, 12
    width = heads * dim
    rng = np.random.default_rng(6)
    qkv = rng.standard_normal((batch * seq, 3 * width)).astype(np.float32)
    rows = np.array([5, 1, 2, 4], np.int32)  # cache row of b*H + h; rows 0 and 3 are not this call's
    k, v = (np.full((6, slots, dim), np.nan, np.float32) for _ in range(2))  # every slot of a reset row is written
    k[[0, 3]], v[[0, 3]] = 7.0, 8.0
    pad = np.ones((batch, seq), np.float32)
    pad[1, :3] = 0  # a left-padded row
    causal = np.tril(np.ones((seq, seq), np.float32))
    may = np.broadcast_to((causal * pad[:, None, :])[:, None], (batch, mask_heads, seq, seq)).copy()
    if mask_heads == 2:
        may[0, 1, 4, :3] = 0  # head 1 of row 0 hides three keys from query 4
    bias = (may - 1) * MASK_VALUE
    new = qkv.reshape(batch, seq, 3, heads, dim)
    scale = 1 / math.sqrt(dim)
    q, keys, values = (new[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, T, D]
    scores = np.einsum("bhtd,bhsd->bhts", q, keys) * scale * may + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    want = np.einsum("bhts,bhsd->bthd", probs / probs.sum(-1, keepdims=True), values).reshape(batch * seq, width)

    step = WithCaches(fused.prefill_attention, k, v)
    got = step(*tensors(qkv[:, :width].copy(), qkv[:, width:].copy(), rows, may, bias,
                        np.full(heads, scale, np.float32))).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # heads merged
    k_got, v_got = step.k.asnumpy(), step.v.asnumpy()
    for item, row in enumerate(rows):
        b, h = divmod(item, heads)
        np.testing.assert_array_equal(k_got[row, :seq], keys[b, h])
        np.testing.assert_array_equal(v_got[row, :seq], values[b, h])
        assert not k_got[row, seq:].any() and not v_got[row, seq:].any()  # zeros after the prompt
    assert (k_got[[0, 3]] == 7.0).all() and (v_got[[0, 3]] == 8.0).all()  # other rows untouched


def test_strip_order_round_trips_and_puts_each_strip_in_one_block():
    rng = np.random.default_rng(6)
    weight = rng.standard_normal((5, 100)).astype(np.float32)  # strips of 48, 48 and 4 columns
    held = cpu_kernels.to_strips(weight)
    flat = held.reshape(-1)
    np.testing.assert_array_equal(flat[:5 * 48], weight[:, :48].reshape(-1))
    np.testing.assert_array_equal(flat[5 * 48:5 * 96], weight[:, 48:96].reshape(-1))
    np.testing.assert_array_equal(flat[5 * 96:], weight[:, 96:].reshape(-1))
    np.testing.assert_array_equal(cpu_kernels.from_strips(held), weight)


@pytest.mark.parametrize("rows,depth,cols", [(1, 40, 16), (1, 37, 245), (1, 1024, 1000), (3, 33, 100), (8, 64, 96),
                                            (9, 40, 145), (17, 64, 500), (12, 1100, 100), (193, 64, 100),
                                            (400, 48, 145), (13, 1024, 100), (200, 512, 50)])
def test_strip_matmul_equals_x_w_plus_bias_alone_with_a_residual_and_with_gelu(fused, rows, depth, cols):
    if fused.strip_matmul is None:
        pytest.skip("no vector kernels in this build: the strip kernel is not built")
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    weight = rng.standard_normal((depth, cols)).astype(np.float32)
    bias = rng.standard_normal(cols).astype(np.float32)
    residual = rng.standard_normal((rows, cols)).astype(np.float32)
    held = cpu_kernels.to_strips(weight)
    tol = dict(rtol=1e-5, atol=1e-5 * max(1.0, depth / 64))  # fp32 sums of `depth` products
    want = x.astype(np.float64) @ weight + bias
    got = as_cell(fused.strip_matmul)(*tensors(x, held, bias)).asnumpy()  # (17, 64, 500): split over threads
    assert got.shape == (rows, cols)
    np.testing.assert_allclose(got, want, **tol)
    with_residual = as_cell(fused.strip_matmul_add)(*tensors(x, held, bias, residual)).asnumpy()
    np.testing.assert_allclose(with_residual, want + residual, **tol)
    exact_gelu = 0.5 * want * (1 + np.vectorize(math.erf)(want / math.sqrt(2)))
    np.testing.assert_allclose(as_cell(fused.strip_matmul_gelu)(*tensors(x, held, bias)).asnumpy(), exact_gelu,
                               **tol)


@pytest.mark.parametrize("kernel", ["strip_matmul", "strip_matmul_add", "strip_matmul_gelu", "row_dot_matmul"])
def test_a_rows_values_do_not_depend_on_the_rows_beside_it(fused, kernel):
    """A projection's or the head's values for a row are the same bits alone or in a batch (the one-row tiles sum
    in the same order as the multi-row ones)."""
    if getattr(fused, kernel) is None:
        pytest.skip("no vector kernels in this build")
    rng = np.random.default_rng(11)
    depth, cols = 700, 1000  # 20 whole strips and a 40-column one, two k blocks; 250 row-dot tiles
    batch = 200  # two row blocks of the strip kernel (kStripRowBlock = 192), the second of 8 rows
    x = rng.standard_normal((batch, depth)).astype(np.float32)
    weight = rng.standard_normal((depth, cols)).astype(np.float32)
    bias = rng.standard_normal(cols).astype(np.float32)
    residual = rng.standard_normal((batch, cols)).astype(np.float32)
    op = as_cell(getattr(fused, kernel))

    def run(rows):
        if kernel == "row_dot_matmul":
            return op(*tensors(x[rows], weight.T.copy())).asnumpy()
        extra = (residual[rows],) if kernel == "strip_matmul_add" else ()
        return op(*tensors(x[rows], cpu_kernels.to_strips(weight), bias, *extra)).asnumpy()

    together = run(slice(0, batch))
    for r in (0, 4, 8, 192, 199):
        np.testing.assert_array_equal(run(slice(r, r + 1)), together[r:r + 1], err_msg=f"row {r}")


@pytest.mark.parametrize("rows,depth,cols", [(1, 40, 7), (3, 33, 100), (4, 64, 9), (9, 1024, 301), (17, 48, 5003)])
def test_row_dot_matmul_equals_x_times_w_transposed(fused, rows, depth, cols):
    if fused.row_dot_matmul is None:
        pytest.skip("no vector kernels in this build: the head keeps MindSpore's MatMul")
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    weight = rng.standard_normal((cols, depth)).astype(np.float32)  # [N, K]: the embedding table's order
    got = as_cell(fused.row_dot_matmul)(*tensors(x, weight)).asnumpy()  # k tails of 8, 1, 0, 0, 0; (17, 48, 5003)
    assert got.shape == (rows, cols)                                    # splits over threads, a column tail of 3
    np.testing.assert_allclose(got, x.astype(np.float64) @ weight.T, rtol=1e-5, atol=1e-4)


def test_decoding_holds_the_strip_order_and_the_network_puts_it_back(fused):
    if fused.strip_matmul is None:
        pytest.skip("no vector kernels in this build: the weights keep their [in, out] order")
    network = random_network(seed=7, vocab_size=50, hidden_size=32, num_heads=4, ffn_hidden_size=70, num_layers=2,
                             max_position_embeddings=32, seq_length=16)
    before = {name: p.asnumpy().copy() for name, p in checkpoint_parameters(network).items()}
    ids = np.random.default_rng(8).integers(1, 50, (2, 7)).astype(np.int32)
    logits = network(ms.Tensor(ids)).asnumpy()
    first = generate(network, ids, max_new_tokens=5)
    c_attn = network.transformer.h[0].attn.c_attn
    assert decoder_for(network).strips and network.strip_layout and c_attn.strips
    assert not np.array_equal(c_attn.weight.asnumpy(), before["transformer.h.0.attn.c_attn.weight"])  # reordered
    np.testing.assert_array_equal(network(ms.Tensor(ids)).asnumpy(), logits)  # the plain forward: [in, out] again
    assert not network.strip_layout
    np.testing.assert_array_equal(generate(network, ids, max_new_tokens=5), first)  # strip order again
    assert network.strip_layout
    after = {name: p.asnumpy() for name, p in checkpoint_parameters(network).items()}  # reading them: [in, out]
    assert not network.strip_layout and after.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_network_logits_equal_with_and_without_the_kernels(fused, monkeypatch):
    dims = dict(vocab_size=50, hidden_size=32, num_heads=4, ffn_hidden_size=64, num_layers=2,
                max_position_embeddings=32, seq_length=16)
    with_kernels = random_network(seed=3, **dims)
    assert fused_cells(with_kernels) == (2 + 1) * 3 + 1  # 2 LayerNorms + MLP per block and top layer, final LN
    monkeypatch.setenv(cpu_kernels.ENABLE_ENV, "0")
    cpu_kernels.reset()
    try:
        without = random_network(seed=3, **dims)
    finally:
        monkeypatch.delenv(cpu_kernels.ENABLE_ENV)
        cpu_kernels.reset()
    assert fused_cells(without) == 0
    assert (with_kernels.row_head is None) == (fused.row_dot_matmul is None) and without.row_head is None
    ids = np.random.default_rng(4).integers(1, 50, (2, 12))
    np.testing.assert_allclose(with_kernels(ms.Tensor(ids.astype(np.int32))).asnumpy(),
                               without(ms.Tensor(ids.astype(np.int32))).asnumpy(), rtol=0, atol=1e-5)
    mask = np.ones_like(ids)
    mask[1, :5] = 0  # a left-padded row: its padding slots are masked in every decode step
    runs = [generate(net, ids, mask, max_new_tokens=12, return_scores=True, prompt_bucket=4, cache_bucket=8)
            for net in (with_kernels, without)]  # windows of 16, 24 slots in a 24-slot cache
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_allclose(np.stack(runs[0][1]), np.stack(runs[1][1]), rtol=0, atol=1e-5)


def test_the_build_is_cached_and_a_missing_compiler_falls_back(fused, tmp_path, monkeypatch, caplog):
    first = cpu_kernels.build(directory=str(tmp_path))
    stamp = os.stat(first).st_mtime_ns
    assert cpu_kernels.build(directory=str(tmp_path)) == first and os.stat(first).st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(first)]  # no temporary file left
    with pytest.raises(RuntimeError, match=r"no C\+\+ compiler 'no-such-cxx' on PATH"):
        cpu_kernels.build(directory=str(tmp_path), compiler="no-such-cxx")
    monkeypatch.setenv("CXX", "no-such-cxx")
    monkeypatch.setenv(cpu_kernels.DIR_ENV, str(tmp_path / "empty"))
    cpu_kernels.reset()
    try:
        with caplog.at_level(logging.WARNING, logger=cpu_kernels.__name__):
            assert cpu_kernels.fused_ops() is None
        assert "no-such-cxx" in caplog.text and "using MindSpore's ops" in caplog.text
    finally:
        cpu_kernels.reset()


def test_an_unknown_isa_is_refused_with_the_values_it_takes(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ISA_ENV, "avx9")
    with pytest.raises(RuntimeError, match=r"PANGU_CODECLM_KERNEL_ISA='avx9': expected one of native, avx2, scalar"):
        cpu_kernels.build_flags()
