"""Training data against the reference's own outputs (../shared/data/reference/objectives.jsonl, MBPP tasks 1-6):
tokenized records, the double shuffle with seed 42, greedy packing, and the collated arrays of the 4 objectives.

Our rows store what the reference's collator returns, with these storage differences (no effect on the loss or the
gradients, see docs/fidelity.md): rows are padded to seq_length with `<pad>` (the reference pads to the batch's longest
row with `<unk>` = 0), padding positions have position id 0 (the reference keeps counting in the last sample) and
attend to themselves (the reference's padding rows are all zero). Labels are unshifted in both: the model shifts over
the whole packed row, so `labels[t]` is predicted from position t - 1.
"""
import json

import numpy as np
import pytest

from conftest import SHARED_DATA

REFERENCE = SHARED_DATA / "reference" / "objectives.jsonl"
OBJECTIVE_NAMES = {"text_code_clm": "text_code", "code_clm": "code", "prefix_code_clm": "prefix_code",
                   "corrupt_code_clm": "corrupt_code"}


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference fixtures not found at {REFERENCE}")
    lines = [json.loads(line) for line in REFERENCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = {}
    for line in lines:
        out.setdefault(line["separation"], []).append(line)
    return out


@pytest.fixture(scope="module")
def tokenizers(pangu_vocab_model):
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    return {sep: PanguTokenizer.from_vocab(pangu_vocab_model, sep) for sep in ("none", "full")}


def _records(lines):
    return [x for x in lines if x.get("kind") == "record"]


def _one(lines, kind, objective=None):
    found = [x for x in lines if x.get("kind") == kind and x.get("objective") == objective]
    assert len(found) == 1
    return found[0]


def _packed(tok, records, objective, seq_length=256):
    from pangu_codeclm.data.objectives import encode_pair
    from pangu_codeclm.data.packing import PackStats, pack_samples
    from pangu_codeclm.data.prepare import ordered_samples
    samples = [encode_pair(tok, r["docstring"], r["code"], objective) for r in records]
    stats = PackStats()
    return list(pack_samples(ordered_samples(samples, seq_length, 42, stats), seq_length, tok.pad_id, stats))


@pytest.mark.parametrize("sep", ["none", "full"])
def test_tokenized_records_equal_the_reference(reference, tokenizers, sep):
    from pangu_codeclm.data.objectives import encode_pair
    tok = tokenizers[sep]
    records = _records(reference[sep])
    assert len(records) == 6
    for r in records:
        s = encode_pair(tok, r["docstring"], r["code"], "code")
        assert s.input_ids.tolist() == r["input_ids"], r["_id"]
        assert len(s) == r["length"]
        assert s.docstr_mask.tolist() == r["docstr_mask"]
        assert (1 - s.docstr_mask).tolist() == r["code_mask"]          # code tokens and <eot>
        assert int(s.docstr_mask.sum()) - 1 == r["prefix_lm_token_idx"]  # index of <python>
        assert s.input_ids[r["prefix_lm_token_idx"]] == tok.python_id


@pytest.mark.parametrize("sep", ["none", "full"])
def test_double_shuffle_and_packing_equal_the_reference(reference, tokenizers, sep):
    from pangu_codeclm.data.prepare import reference_order
    tok = tokenizers[sep]
    records = _records(reference[sep])
    packing = _one(reference[sep], "packing")
    order = reference_order([r["length"] for r in records], packing["max_seq_length"], 42)
    assert [records[i]["_id"] for i in order] == packing["order_after_shuffle_2"]
    assert np.random.default_rng(42).permutation(6).tolist() == packing["shuffle_1_permutation"]
    rows = _packed(tok, records, "prefix_code", packing["max_seq_length"])
    assert len(rows) == len(packing["packed_rows"]) == 3
    for ours, ref in zip(rows, packing["packed_rows"]):
        used = int(ours.segment_lengths.sum())
        assert ours.input_ids[:used].tolist() == ref["input_ids"]
        assert ours.docstr_mask[:used].tolist() == ref["docstr_mask"]
        assert ours.segment_lengths.tolist() == ref["length"]
        assert (ours.prefix_lengths - 1).tolist() == ref["prefix_lm_token_idx"]


def _tril_blocks(blocks, n):
    m = np.zeros((n, n), np.float32)
    for s, e in blocks:
        m[s:e, s:e] = np.tril(np.ones((e - s, e - s), np.float32))
    return m


@pytest.mark.parametrize("sep", ["none", "full"])
@pytest.mark.parametrize("ref_objective", sorted(OBJECTIVE_NAMES))
def test_collated_objectives_equal_the_reference(reference, tokenizers, sep, ref_objective):
    from pangu_codeclm.data.objectives import CORRUPT_PROB, SpecialIds, corruptible_positions, corrupt_row
    from pangu_codeclm.data.packing import row_columns
    tok = tokenizers[sep]
    ref = _one(reference[sep], "collated", ref_objective)
    objective = OBJECTIVE_NAMES[ref_objective]
    rows = _packed(tok, _records(reference[sep]), objective)
    width = ref["attention_mask_shape"][-1]
    clean = ref.get("clean_input_ids", ref["input_ids"])
    for i, row in enumerate(rows):
        ids, labels, pos, mask, docstr = row_columns(row)
        used = int(row.segment_lengths.sum())
        assert ids[:used].tolist() == clean[i][:used]
        assert labels[:used].tolist() == ref["labels"][i][:used]          # D4: text_code labels every <comments>
        assert labels[used:width].tolist() == ref["labels"][i][used:]     # padding: -100 in both
        assert pos[:used].tolist() == ref["position_ids"][i][:used]
        assert docstr[:width].tolist() == ref["docstr_mask"][i]
        assert ref["input_ids"][i][used:] == [0] * (width - used) and (ids[used:] == tok.pad_id).all()  # D3
        expected = _tril_blocks(ref["attention_mask_blocks"][i], width)
        for s, e in ref.get("prefix_lm_mask_blocks", [[]] * len(rows))[i]:   # prefix: our one mask is both
            expected[s:e, s:e] = 1
        np.testing.assert_array_equal(mask[:used, :used] > 0, expected[:used, :used] > 0)
        assert mask[:used, used:].sum() == 0                              # no real token sees the padding
        if objective == "prefix_code":                                    # D5: <comments>..<python> inclusive
            assert [[s, s + p] for s, p in zip(np.cumsum([0, *row.segment_lengths[:-1]]).tolist(),
                                               row.prefix_lengths.tolist())] == ref["prefix_lm_mask_blocks"][i]
            for s, e in ref["prefix_lm_mask_blocks"][i]:
                assert mask[s:e, s:e].min() == 1
        else:
            assert row.prefix_lengths.tolist() == [0] * len(row.segment_lengths)
        if objective == "corrupt_code":                                   # D6
            eligible = np.where(corruptible_positions(docstr))[0].tolist()
            assert eligible == ref["eligible_positions"][i]
            assert set(ref["masked_positions"][i]) <= set(eligible)
            ids_range = SpecialIds.from_tokenizer(tok)
            assert [0, ids_range.random_high] == ref["random_id_range"] == [0, tok.vocab_size]  # whole vocabulary
            assert ids_range.mask_id == ref["mask_token_id"] and CORRUPT_PROB == ref["mlm_probability"]
            corrupted = corrupt_row(ids, docstr, seed=1234, position=i, mask_id=ids_range.mask_id,
                                    random_high=ids_range.random_high)
            changed = np.where(corrupted != ids)[0]
            assert set(changed.tolist()) <= set(eligible)
            assert corrupted.min() >= 0 and corrupted.max() < ids_range.random_high
