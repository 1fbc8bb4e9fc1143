"""Objective arrays (labels, docstr_mask, prefix, corruption statistics) and packing invariants."""
import numpy as np
import pytest

from pangu_codeclm.data.objectives import (CORRUPT_PROB, MASK_FRACTION, OBJECTIVES, SpecialIds, build_sample,
                                           corrupt_row, corrupt_tokens, corruptible_positions, encode_pair)
from pangu_codeclm.data.packing import PackStats, attention_mask, pack_samples, position_ids, row_columns
from pangu_codeclm.sample_format import IGNORE_INDEX

IDS = SpecialIds(comments_id=911, python_id=904, eot_id=901, mask_id=912, pad_id=902, random_high=900)
DOC = [10, 11, 12]
CODE = [20, 21, 22, 23]


def test_sample_layout_and_labels_per_objective():
    expected_ids = [911, 10, 11, 12, 904, 20, 21, 22, 23, 901]
    code_targets = [-100] * 5 + [20, 21, 22, 23, 901]
    for objective in ("code", "prefix_code"):
        s = build_sample(DOC, CODE, objective, IDS)
        assert s.input_ids.tolist() == expected_ids
        assert s.labels.tolist() == code_targets
        assert s.docstr_mask.tolist() == [1] * 5 + [0] * 5
        assert s.input_ids.dtype == s.labels.dtype == s.docstr_mask.dtype == np.int32
    assert build_sample(DOC, CODE, "code", IDS).prefix_len == 0
    assert build_sample(DOC, CODE, "prefix_code", IDS).prefix_len == 5
    text_code = build_sample(DOC, CODE, "text_code", IDS)
    assert text_code.labels.tolist() == expected_ids  # <comments> too: the previous sample's <eot> predicts it
    corrupt = build_sample(DOC * 40, CODE, "corrupt_code", IDS)  # corrupted per batch, not here
    assert corrupt.labels.tolist() == [-100] * 122 + [20, 21, 22, 23, 901]
    assert corrupt.input_ids[[0, 121]].tolist() == [911, 904] and corrupt.input_ids[122:].tolist() == CODE + [901]
    assert corrupt.input_ids[1:121].tolist() == DOC * 40
    with pytest.raises(ValueError, match="unknown objective 'mlm'; expected one of text_code, code"):
        build_sample(DOC, CODE, "mlm", IDS)


def test_empty_docstring_sample():
    s = build_sample([], [5], "prefix_code", IDS)
    assert s.input_ids.tolist() == [911, 904, 5, 901] and s.prefix_len == 2
    assert s.labels.tolist() == [-100, -100, 5, 901]


def test_corruption_statistics_and_seeding():
    doc = np.full(40000, 7, np.int32)
    eligible = np.ones(len(doc), bool)
    eligible[:100] = False
    out, chosen = corrupt_tokens(doc, eligible, np.random.default_rng(0), IDS.mask_id, IDS.random_high)
    assert not chosen[:100].any() and (out[:100] == 7).all()   # only eligible positions are ever touched
    assert abs(chosen[100:].mean() - CORRUPT_PROB) < 0.01  # binomial sd ≈ 0.0018
    masked = out == IDS.mask_id
    assert not (masked & ~chosen).any()
    assert abs(masked.sum() / chosen.sum() - MASK_FRACTION) < 0.03  # sd ≈ 0.005
    replaced = chosen & ~masked
    rand = out[replaced]
    assert rand.min() >= 0 and rand.max() < IDS.random_high
    assert len(np.unique(rand)) > 0.5 * min(len(rand), IDS.random_high)  # spread over the range, not one id
    assert abs(rand.mean() - (IDS.random_high - 1) / 2) < 0.05 * IDS.random_high  # uniform mean
    assert (out[~chosen] == 7).all()
    # a packed row: docstring tokens only (not <comments>, <python>, code, <eot>, padding), seeded by the position
    row = build_sample(doc[:300], CODE, "corrupt_code", IDS)
    ids = np.concatenate([row.input_ids, row.input_ids, np.full(5, IDS.pad_id, np.int32)])
    docstr = np.concatenate([row.docstr_mask, row.docstr_mask, np.zeros(5, np.int32)])
    elig = corruptible_positions(docstr)
    n = len(row)
    assert np.where(~elig & (docstr > 0))[0].tolist() == [0, 301, n, n + 301]
    a = corrupt_row(ids, docstr, seed=1, position=4, mask_id=IDS.mask_id, random_high=IDS.random_high)
    assert not ((a != ids) & ~elig).any() and (a != ids).sum() > 0
    assert np.array_equal(a, corrupt_row(ids, docstr, 1, 4, IDS.mask_id, IDS.random_high))
    assert not np.array_equal(a, corrupt_row(ids, docstr, 1, 5, IDS.mask_id, IDS.random_high))
    assert not np.array_equal(a, corrupt_row(ids, docstr, 2, 4, IDS.mask_id, IDS.random_high))


def _random_samples(rng, n, objective, max_doc=12, max_code=20):
    return [build_sample(rng.integers(0, 800, rng.integers(0, max_doc)),
                         rng.integers(0, 800, rng.integers(1, max_code)), objective, IDS)
            for i in range(n)]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_packing_invariants(objective):
    rng = np.random.default_rng(42)
    T = 48
    samples = _random_samples(rng, 120, objective, max_doc=30, max_code=30)
    stats = PackStats()
    rows = list(pack_samples(samples, T, IDS.pad_id, stats))
    kept = [s for s in samples if len(s) <= T]
    assert stats.dropped_too_long == len(samples) - len(kept) > 0
    assert stats.packed == len(kept) and stats.rows == len(rows)
    # greedy in order: concatenating the rows' segments gives the kept samples in order, and the next sample
    # never fits in the previous row's leftover space
    flat = [seg for r in rows
            for seg in np.split(r.input_ids[:r.segment_lengths.sum()], np.cumsum(r.segment_lengths)[:-1])]
    assert [x.tolist() for x in flat] == [s.input_ids.tolist() for s in kept]
    for r, nxt in zip(rows, rows[1:]):
        assert r.segment_lengths.sum() + nxt.segment_lengths[0] > T
    for r in rows:
        ids, labels, pos, mask, docm = row_columns(r)
        assert ids.shape == labels.shape == pos.shape == docm.shape == (T,) and mask.shape == (T, T)
        assert ids.dtype == labels.dtype == pos.dtype == docm.dtype == np.int32 and mask.dtype == np.float32
        used = int(r.segment_lengths.sum())
        assert used <= T
        assert (ids[used:] == IDS.pad_id).all() and (labels[used:] == IGNORE_INDEX).all() and (docm[used:] == 0).all()
        starts = np.concatenate([[0], np.cumsum(r.segment_lengths)])
        for k, n in enumerate(r.segment_lengths.tolist()):
            a, b = starts[k], starts[k] + n
            assert pos[a:b].tolist() == list(range(n))
            seg_ids, seg_labels = ids[a:b], labels[a:b]
            p = int(np.where(seg_ids == IDS.python_id)[0][0])
            assert seg_ids[0] == IDS.comments_id and seg_ids[-1] == IDS.eot_id
            assert docm[a:b].tolist() == [1] * (p + 1) + [0] * (n - p - 1)
            # labels: −100 exactly where the objective says
            target = seg_labels != IGNORE_INDEX
            if objective == "text_code":
                assert target.all()
            else:
                assert target.tolist() == [False] * (p + 1) + [True] * (n - p - 1)
            assert (seg_labels[target] == seg_ids[target]).all()
            # mask: causal inside, nothing across segments, prefix block bidirectional for prefix_code
            block = mask[a:b, a:b]
            expected = np.tril(np.ones((n, n)))
            if objective == "prefix_code":
                assert r.prefix_lengths[k] == p + 1
                expected[:p + 1, :p + 1] = 1
            else:
                assert r.prefix_lengths[k] == 0
            assert np.array_equal(block, expected)
            assert mask[a:b, :a].sum() == 0 and mask[a:b, b:].sum() == 0
        assert np.array_equal(mask[used:, used:], np.eye(T - used))  # padding attends only to itself
        assert mask[used:, :used].sum() == 0 and mask[:used, used:].sum() == 0


def test_exact_fit_and_all_too_long():
    s = build_sample([1, 2], [3, 4], "code", IDS)  # length 7
    rows = list(pack_samples([s, s], 7, IDS.pad_id))
    assert len(rows) == 2 and all(r.segment_lengths.tolist() == [7] for r in rows)
    stats = PackStats()
    assert list(pack_samples([s], 6, IDS.pad_id, stats)) == [] and stats.dropped_too_long == 1
    with pytest.raises(ValueError, match="seq_length must be positive"):
        list(pack_samples([s], 0, IDS.pad_id))


def test_mask_helpers_small_case():
    assert position_ids([3, 2], 6).tolist() == [0, 1, 2, 0, 1, 0]
    m = attention_mask([3, 2], [2, 0], 6)
    assert m.astype(int).tolist() == [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 1]]


def test_encode_pair_with_the_released_tokenizer(pangu_vocab_model, python_tokens_file):
    from pangu_codeclm.tokenization.pangu import PanguTokenizer

    tok = PanguTokenizer.from_vocab(pangu_vocab_model, separation="partial", separate_tokens_file=python_tokens_file)
    code = "def add(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>"
    s = encode_pair(tok, "Add two numbers.", code, "code")
    doc_ids, code_ids = tok.encode("Add two numbers."), tok.encode_code(code)
    assert s.input_ids.tolist() == [tok.comments_id] + doc_ids + [tok.python_id] + code_ids + [tok.eot_id]
    assert code_ids != tok.encode(code)  # partial separation maps code tokens (e.g. `def`, `return`) to new ids
    assert s.labels.tolist() == [-100] * (len(doc_ids) + 2) + code_ids + [tok.eot_id]
    assert SpecialIds.from_tokenizer(tok).random_high == tok.vocab_size == 32477  # D6: the whole vocabulary
