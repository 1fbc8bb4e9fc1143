"""KV-cache generation: per-step logits equal full recomputation, bucket independence, eos padding, sampling,
continuous batching (generate_many) equal to one prompt at a time."""
import numpy as np
import pytest

from conftest import random_network
from pangu_codeclm.infer import generate as generate_mod
from pangu_codeclm.infer.generate import decoder_for, generate, generate_many, left_pad_positions, select_tokens

V, MAX_POS, PAD, BUCKETS = 90, 48, 0, dict(prompt_bucket=8, cache_bucket=16)


@pytest.fixture(scope="module")
def net(ms_cpu):
    network = random_network(seed=0, vocab_size=V, hidden_size=32, num_heads=4, ffn_hidden_size=64, num_layers=2,
                             max_position_embeddings=MAX_POS, seq_length=32, pad_token_id=PAD)
    yield network
    network.set_separation_map({})


def prompts():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, V, (3, 9))
    mask = np.ones((3, 9), np.int64)
    mask[1, :4] = 0
    mask[2, :2] = 0
    ids[mask == 0] = PAD
    return ids, mask


def full_recompute_logits(network, out, mask):
    """Logits of every position of prompt + generation, from one plain forward pass."""
    import mindspore as ms
    full_mask = np.concatenate([mask, np.ones((mask.shape[0], out.shape[1] - mask.shape[1]))], 1).astype(np.float32)
    logits = network(ms.Tensor(out.astype(np.int32)), position_ids=ms.Tensor(left_pad_positions(full_mask)),
                     attention_mask=ms.Tensor(full_mask))
    return logits.asnumpy()


@pytest.mark.parametrize("separated", [False, True], ids=["no-map", "partial-style-map"])
def test_cached_step_logits_equal_full_recomputation(net, separated):
    ids, mask = prompts()
    net.set_separation_map({})
    steps = 7
    free = generate(net, ids, mask, max_new_tokens=steps, **BUCKETS)
    if separated:
        # make text-only every id the unrestricted model chose, so the restriction must change the output
        chosen = sorted(set(free[:, ids.shape[1]:].ravel().tolist()))
        code_twins = [i for i in range(V - 1, 0, -1) if i not in chosen][:len(chosen)]
        net.set_separation_map(dict(zip(chosen, code_twins)))
    out, scores = generate(net, ids, mask, max_new_tokens=steps, return_scores=True, **BUCKETS)
    net.set_separation_map({})
    assert out.shape == (3, ids.shape[1] + steps)
    np.testing.assert_array_equal(out[:, :ids.shape[1]], ids)
    reference = full_recompute_logits(net, out, mask)
    for i, step_logits in enumerate(scores):
        np.testing.assert_allclose(step_logits, reference[:, ids.shape[1] - 1 + i], atol=1e-4, rtol=0)
    generated = out[:, ids.shape[1]:]
    if separated:
        assert not np.isin(generated, chosen).any()
        assert not np.array_equal(generated, free[:, ids.shape[1]:])
    else:
        np.testing.assert_array_equal(generated, free[:, ids.shape[1]:])
        np.testing.assert_array_equal(generated, np.stack([s.argmax(-1) for s in scores], 1))


@pytest.mark.parametrize("dynamic", [True, False], ids=["one-prefill-graph", "graph-per-prompt-bucket"])
def test_prefill_graphs_over_prompt_lengths(net, dynamic):
    """CPU's dynamic-shape prefill compiles one graph for every prompt length (a static graph per length kept its
    buffers: issue 10); both paths give greedy ids equal to the argmax of a full recomputation."""
    decoder = decoder_for(net)
    decoder.set_dynamic_prefill(dynamic)
    try:
        rng = np.random.default_rng(7)
        prompts = [rng.integers(1, V, n) for n in (5, 9, 13, 17)]
        out = generate_many(net, prompts, max_new_tokens=4, batch_size=2, **BUCKETS)
        graphs = decoder.prefill_graphs
    finally:
        decoder.set_dynamic_prefill()
    assert graphs == (1 if dynamic else 3)  # prompt buckets of 8: 8, 16, 24
    for prompt, generated in zip(prompts, out):
        assert len(generated) == 4
        reference = full_recompute_logits(net, np.concatenate([prompt, generated])[None], np.ones((1, prompt.size)))
        np.testing.assert_array_equal(generated, reference[0, prompt.size - 1:-1].argmax(-1))


def test_no_cache_baseline_gives_the_same_steps(net):
    ids, mask = prompts()
    a, sa = generate(net, ids, mask, max_new_tokens=5, return_scores=True, **BUCKETS)
    np.testing.assert_array_equal(generate(net, ids, attention_mask=mask, max_new_tokens=5, **BUCKETS), a)
    b, sb = generate(net, ids, mask, max_new_tokens=5, return_scores=True, use_cache=False, **BUCKETS)
    np.testing.assert_array_equal(a, b)
    for x, y in zip(sa, sb):
        np.testing.assert_allclose(x, y, atol=1e-4, rtol=0)


def test_greedy_does_not_depend_on_buckets_or_extra_left_padding(net):
    ids, mask = prompts()
    base = generate(net, ids, mask, max_new_tokens=6, **BUCKETS)
    other = generate(net, ids, mask, max_new_tokens=6, prompt_bucket=16, cache_bucket=32)
    np.testing.assert_array_equal(base, other)
    extra = np.concatenate([np.full((3, 5), 7), ids], 1)
    extra_mask = np.concatenate([np.zeros((3, 5), np.int64), mask], 1)
    padded = generate(net, extra, extra_mask, max_new_tokens=6, **BUCKETS)
    np.testing.assert_array_equal(padded[:, 5:], base)


def test_eos_rows_get_padding_and_generation_stops_when_all_done(net):
    ids, mask = prompts()
    free = generate(net, ids, mask, max_new_tokens=8, **BUCKETS)[:, ids.shape[1]:]
    eos = int(free[0, -1])
    stop0 = int(np.flatnonzero(free[0] == eos)[0])
    out = generate(net, ids, mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=PAD, **BUCKETS)
    gen = out[:, ids.shape[1]:]
    for row in range(3):
        hits = np.flatnonzero(free[row] == eos)
        if hits.size:
            stop = hits[0]
            np.testing.assert_array_equal(gen[row, :stop + 1], free[row, :stop + 1])
            assert (gen[row, stop + 1:] == PAD).all()
        else:
            np.testing.assert_array_equal(gen[row], free[row, :gen.shape[1]])
    # all rows finish: the output stops at the last row's eos
    ends = [np.flatnonzero(free[r] == eos) for r in range(3)]
    if all(e.size for e in ends):
        assert gen.shape[1] == max(e[0] for e in ends) + 1
    assert (gen[0, stop0 + 1:] == PAD).all() and gen.shape[1] > stop0 + 1  # other rows went on
    # a pad id outside the vocabulary is only written, never fed back; the no-cache baseline agrees
    after_eos = np.cumsum(np.cumsum(gen == eos, 1), 1) > 1
    for use_cache in (True, False):
        odd_pad = generate(net, ids, mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=V + 100,
                           use_cache=use_cache, **BUCKETS)[:, ids.shape[1]:]
        np.testing.assert_array_equal(odd_pad, np.where(after_eos, V + 100, gen))
    single = generate(net, ids[:1], mask[:1], max_new_tokens=8, eos_token_id=eos, **BUCKETS)
    assert single.shape[1] == ids.shape[1] + stop0 + 1 and single[0, -1] == eos


def test_stops_at_max_positions(net):
    rng = np.random.default_rng(5)
    ids = rng.integers(1, V, (1, MAX_POS - 3))
    out = generate(net, ids, max_new_tokens=10, **BUCKETS)
    assert out.shape == (1, MAX_POS)
    np.testing.assert_array_equal(generate(net, ids, max_new_tokens=10, use_cache=False, **BUCKETS), out)
    with pytest.raises(ValueError, match="at most"):
        generate(net, rng.integers(1, V, (1, MAX_POS)), max_new_tokens=1)


def test_seeded_sampling(net):
    ids, mask = prompts()
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.5, top_p=0.9, top_k=20, **BUCKETS)
    a = generate(net, ids, mask, seed=3, **kw)
    b = generate(net, ids, mask, seed=3, **kw)
    c = generate(net, ids, mask, seed=4, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy = generate(net, ids, mask, max_new_tokens=6, **BUCKETS)
    np.testing.assert_array_equal(generate(net, ids, mask, max_new_tokens=6, do_sample=True, top_k=1, seed=9,
                                           **BUCKETS), greedy)


def test_select_tokens_filters():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 4000))
    draws = select_tokens(logits, rng, do_sample=True)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    assert set(select_tokens(logits, rng, do_sample=True, top_k=2)) == {0, 1}
    assert set(select_tokens(logits, rng, do_sample=True, top_p=0.75)) == {0, 1}  # 0.5 < 0.75 <= 0.8
    assert set(select_tokens(logits, rng, do_sample=True, top_p=0.5)) == {0}
    allowed = np.array([False, True, True, True])
    assert set(select_tokens(logits, rng, do_sample=True, allowed=allowed, top_k=1)) == {1}
    assert (select_tokens(logits[:2], allowed=allowed) == 1).all()
    cold = select_tokens(logits, rng, do_sample=True, temperature=0.05)
    assert (cold == 0).mean() > 0.99


def test_bad_arguments_name_the_argument(net):
    ids, mask = prompts()
    with pytest.raises(ValueError, match="attention_mask"):
        generate(net, ids, mask[:, :-1])
    with pytest.raises(ValueError, match="row 0 has no real token"):
        generate(net, ids, np.zeros_like(mask))
    with pytest.raises(ValueError, match="top_p"):
        generate(net, ids, mask, do_sample=True, top_p=0.0)
    with pytest.raises(ValueError, match="input_ids"):
        generate(net, np.full((1, 3), V + 5))


def one_at_a_time(network, prompts, budgets, eos, **kw):
    """Greedy ids of each prompt generated alone, cut after eos."""
    out = []
    for prompt, budget in zip(prompts, budgets):
        ids = generate(network, np.asarray(prompt)[None], max_new_tokens=budget, eos_token_id=eos, **BUCKETS,
                       **kw)[0, len(prompt):].tolist()
        out.append(ids[:ids.index(eos) + 1] if eos in ids else ids)
    return out


def mixed_prompts():
    rng = np.random.default_rng(7)
    return [rng.integers(1, V, n).tolist() for n in (13, 3, 9, 20, 5, 11)], [6, 9, 4, 7, 8, 5]


@pytest.mark.parametrize("batch_size", [1, 2, 4, 6])
def test_continuous_batching_equals_one_prompt_at_a_time(net, batch_size):
    prompts, budgets = mixed_prompts()
    free = one_at_a_time(net, prompts, budgets, eos=None)
    # the eos id that cuts the rows to the most different lengths: slots free up at different steps
    eos = max(sorted({i for ids in free for i in ids}),
              key=lambda e: len({ids.index(e) if e in ids else len(ids) for ids in free}))
    alone = one_at_a_time(net, prompts, budgets, eos=eos)
    assert len({len(a) for a in alone}) > 2 and any(len(a) < b for a, b in zip(alone, budgets))
    finished = []
    got = generate_many(net, prompts, max_new_tokens=budgets, batch_size=batch_size, eos_token_id=eos,
                        on_finish=lambda i, ids: finished.append((i, list(ids))), **BUCKETS)
    assert got == alone
    assert sorted(finished) == list(enumerate(alone))
    if batch_size == 2:  # the short row's slot was refilled: a later prompt finished before an earlier one
        assert [i for i, _ in finished] != sorted(i for i, _ in finished)
    if batch_size == 1:  # one row at a time finishes in admission order: the longest prompt + budget first
        assert [i for i, _ in finished] == [3, 0, 5, 2, 4, 1]
    assert generate_many(net, prompts, max_new_tokens=4, batch_size=batch_size, **BUCKETS) == \
        [ids[:4] for ids in free]


def test_admission_groups_bound_rows_and_cache():
    widths, budgets = [10, 12, 5, 9, 40, 4], np.array([5, 5, 5, 30, 5, 5])
    queue = [5, 4, 3, 2, 1, 0]  # popped from the end: prompt 0 first
    groups = generate_mod._admission_groups([7, 2, 3, 4, 5, 6], queue, widths, budgets, cache_len=45, max_rows=3)
    # 0+1+2 at width 12 (3 rows); 3 (9 + 30 <= 45) cannot join 4 (40 + 30 > 45) and goes alone; 4+5 at width 40
    assert [(list(rows), list(prompts)) for rows, prompts in groups] == [([7, 2, 3], [0, 1, 2]), ([4], [3]),
                                                                       ([5, 6], [4, 5])]
    assert queue == []
    # fewer free rows than prompts: the rest stay queued, in order
    queue = [3, 2, 1, 0]
    groups = generate_mod._admission_groups([5], queue, [3] * 4, np.array([2] * 4), cache_len=16, max_rows=8)
    assert [(list(r), list(p)) for r, p in groups] == [([5], [0])] and queue == [3, 2, 1]
    assert [generate_mod.prefill_group_rows(n) for n in (16, 128, 256, 384, 768, 2048)] == [8, 6, 3, 2, 1, 1]


def test_write_plan_has_one_column_per_distinct_slot():
    slots, writes = np.array([5, 9, 5, 7, 9]), np.array([True, True, False, True, True])
    distinct, onehot = generate_mod._write_plan(slots, writes, heads=2)
    assert distinct.tolist() == [5, 7, 9, 5] and distinct.dtype == np.int32  # 3 slots, padded to 4 (zero column)
    assert onehot.shape == (10, 4, 1)
    want = np.zeros((10, 4))
    for b, (slot, writing) in enumerate(zip(slots, writes)):
        want[2 * b:2 * b + 2, [5, 7, 9].index(slot)] = writing
    np.testing.assert_array_equal(onehot[..., 0], want)
    same, lockstep = generate_mod._write_plan(np.full(4, 3), np.ones(4, bool), heads=2)
    assert same.tolist() == [3] and lockstep.shape == (8, 1, 1) and lockstep.all()
    assert generate_mod._write_plan(np.arange(3), np.ones(3, bool), heads=1)[0].tolist() == [0, 1, 2]  # at most B


@pytest.mark.parametrize("group_slots", [16, 1024])
def test_grouped_prefill_equals_one_prompt_at_a_time(net, monkeypatch, group_slots):
    monkeypatch.setattr(generate_mod, "PREFILL_GROUP_SLOTS", group_slots)
    prompts, budgets = mixed_prompts()
    alone = one_at_a_time(net, prompts, budgets, eos=None)
    decoder = decoder_for(net)
    calls = []
    prefill = decoder.prefill

    def counting_prefill(ids, *args, **kwargs):
        calls.append(ids.shape[0])
        return prefill(ids, *args, **kwargs)

    monkeypatch.setattr(decoder, "prefill", counting_prefill)
    assert generate_many(net, prompts, max_new_tokens=budgets, batch_size=6, **BUCKETS) == alone
    assert sum(calls) == len(prompts)
    # caches of 32 slots (the longest prompt + budget, 27, in cache buckets of 16): 16 slots take one row
    assert max(calls) == (1 if group_slots == 16 else 6)
    calls.clear()
    lockstep = generate(net, np.asarray(prompts[0])[None].repeat(3, 0), max_new_tokens=3, **BUCKETS)
    assert calls == ([1, 1, 1] if group_slots == 16 else [3])  # a 16-slot cache
    assert (lockstep[:, len(prompts[0]):] == np.asarray(alone[0][:3])).all()


def test_continuous_batching_with_prefix_index_and_position_limit(net):
    rng = np.random.default_rng(8)

    def alone(prompt, index):
        return generate(net, np.asarray(prompt)[None], max_new_tokens=6, prefix_index=[index],
                        **BUCKETS)[0, len(prompt):].tolist()

    # prompts whose greedy ids the prefix changes (with this random network most prompts repeat one id)
    candidates = [(rng.integers(1, V, int(n)).tolist(), int(n) - 1) for n in rng.integers(6, 20, 30)]
    changed = [(p, i) for p, i in candidates if alone(p, i) != alone(p, -1)][:3]
    assert len(changed) == 3
    long_prompt = rng.integers(1, V, MAX_POS - 2).tolist()
    prompts = [changed[0][0], long_prompt, changed[1][0], rng.integers(1, V, 6).tolist(), changed[2][0]]
    index = [changed[0][1], 7, changed[1][1], -1, changed[2][1]]
    alone = [alone(p, i) for p, i in zip(prompts, index)]
    assert len(alone[1]) == 2  # stops at the model's max positions
    assert generate_many(net, prompts, max_new_tokens=6, batch_size=2, prefix_index=index, **BUCKETS) == alone


def test_continuous_batching_bad_arguments(net):
    with pytest.raises(ValueError, match=r"prompts\[1\]: expected 1\.\."):
        generate_many(net, [[1, 2], []])
    with pytest.raises(ValueError, match=r"prompts\[0\]: ids must lie"):
        generate_many(net, [[V + 3]])
    with pytest.raises(ValueError, match="prefix_index: expected one index per prompt"):
        generate_many(net, [[1, 2], [3]], prefix_index=[0])
    with pytest.raises(ValueError, match="batch_size"):
        generate_many(net, [[1, 2]], batch_size=0)
    assert generate_many(net, []) == []


def test_api_generate_many_uses_the_config_eos(net):
    from pangu_codeclm.api import PanguCodeCLM
    prompts, budgets = mixed_prompts()
    free = one_at_a_time(net, prompts, budgets, eos=None)
    eos = free[0][1]
    model = PanguCodeCLM(net.config.replace(eos_token_id=eos), net, {})
    got = model.generate_many(prompts, max_new_tokens=budgets, batch_size=3)
    assert got == one_at_a_time(net, prompts, budgets, eos=eos)
    assert len(got[0]) <= 2
