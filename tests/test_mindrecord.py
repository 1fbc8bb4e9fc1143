"""MindRecord shards: write/read round trip, sharding, determinism, atomicity; the `prepare` command end to end."""
import dataclasses
import json
import os

import numpy as np
import pytest

from pangu_codeclm.data.mindrecord import create_dataset, dataset_info, expand_row, resolve_files, write_dataset
from pangu_codeclm.data.objectives import SpecialIds, build_sample
from pangu_codeclm.data.prepare import reference_order
from pangu_codeclm.data.packing import pack_samples, row_columns

IDS = SpecialIds(comments_id=911, python_id=904, eot_id=901, mask_id=912, pad_id=902, random_high=900)
T = 24


def _rows(n_samples=60, objective="prefix_code", seed=0):
    rng = np.random.default_rng(seed)
    samples = [build_sample(rng.integers(0, 800, rng.integers(0, 8)), rng.integers(0, 800, rng.integers(1, 12)),
                            objective, IDS) for _ in range(n_samples)]
    rows = list(pack_samples(samples, T, IDS.pad_id))
    for i, r in enumerate(rows):  # tag each row: its first token becomes a unique id so rows can be told apart
        r.input_ids[0] = 10000 + i
    return rows


def _read_all(data):
    return [tuple(b) for b in data.create_tuple_iterator(output_numpy=True, num_epochs=1)]


def test_round_trip_sharding_and_determinism(ms_cpu):
    rows = _rows()[:41]
    assert len(rows) % 2 == 1 and len(rows) % 3 != 0  # so sharding must leave rows out to stay disjoint
    meta = write_dataset(rows, "ds", T, num_shards=2, meta={"objective": "prefix_code"})
    assert meta["rows"] == len(rows) and meta["files"] == ["data.mindrecord0", "data.mindrecord1"]
    assert json.load(open("ds/meta.json")) == meta == dataset_info("ds")
    assert dataset_info("ds/data.mindrecord*") == {"rows": len(rows)}
    assert dataset_info(["ds/data.mindrecord0", "ds/data.mindrecord1"]) == {"rows": len(rows)}
    assert resolve_files(["ds"]) == resolve_files("ds") == ["ds/data.mindrecord0", "ds/data.mindrecord1"]
    assert sorted(os.listdir(".")) == ["ds"]  # no temp directory left

    by_tag = {int(r.input_ids[0]): r for r in rows}
    batches = _read_all(create_dataset("ds", batch_size=1, shuffle=False, drop_remainder=False))
    assert len(batches) == len(rows)
    for b in batches:
        assert [x.dtype for x in b] == [np.int32, np.int32, np.int32, np.float32, np.int32]
        assert [x.shape for x in b] == [(1, T)] * 3 + [(1, T, T), (1, T)]
        want = row_columns(by_tag[int(b[0][0, 0])])
        for got, exp in zip(b, want):
            np.testing.assert_array_equal(got[0], exp)

    def tags(shard_id, seed, num_shards=2, shuffle=True):
        data = create_dataset("ds", batch_size=2, num_shards=num_shards, shard_id=shard_id, seed=seed,
                              shuffle=shuffle, drop_remainder=False)
        return [int(t) for b in _read_all(data) for t in b[0][:, 0]]

    n = len(rows)
    for k in (2, 3):
        parts = [tags(i, 7, num_shards=k) for i in range(k)]
        assert all(len(p) == n // k for p in parts)  # equal lengths for data-parallel ranks
        union = {t for p in parts for t in p}
        assert len(union) == k * (n // k) and union <= set(by_tag)  # disjoint; at most k-1 rows left out
    assert tags(0, 7) == tags(0, 7)  # same seed, same order
    assert tags(0, 7) != tags(0, 8)  # another seed reorders
    assert tags(0, 7, shuffle=False) == sorted(by_tag)[0::2][:n // 2]
    full = _read_all(create_dataset("ds", batch_size=4, drop_remainder=True, seed=1, repeat=2))
    assert len(full) == 2 * (n // 4) and full[0][3].shape == (4, T, T)
    first, second = [[int(t) for b in full[i * (n // 4):(i + 1) * (n // 4)] for t in b[0][:, 0]] for i in (0, 1)]
    assert first == second and len(set(first)) == 4 * (n // 4)
    with pytest.raises(ValueError, match=r"shard_id must be in \[0, 2\)"):
        create_dataset("ds", 1, num_shards=2, shard_id=2)
    with pytest.raises(ValueError, match=r"cannot feed 1000 shards"):
        create_dataset("ds", 1, num_shards=1000, shard_id=0)


def test_write_is_atomic_and_refuses_existing(ms_cpu):
    rows = _rows(20)

    def broken():
        yield from rows[:3]
        raise RuntimeError("tokenizer crashed")

    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        write_dataset(broken(), "ds", T)
    assert os.listdir(".") == []
    write_dataset(rows, "ds", T)
    with pytest.raises(FileExistsError, match="ds exists and is not empty; pass overwrite=True"):
        write_dataset(rows, "ds", T)
    with pytest.raises(ValueError, match="row 0 has length 24, expected seq_length 32"):
        write_dataset(rows, "ds", 32, overwrite=True)
    short = dataclasses.replace(rows[1], input_ids=rows[1].input_ids[:-1])
    with pytest.raises(ValueError, match=f"row 1 has length {T - 1}, expected seq_length {T}"):
        write_dataset([rows[0], short], "ds", T, overwrite=True)
    assert dataset_info("ds")["rows"] == len(rows)  # the failed overwrite left the old dataset intact
    write_dataset(rows[:2], "ds", T, overwrite=True)
    assert dataset_info("ds")["rows"] == 2 and sorted(os.listdir(".")) == ["ds"]
    with pytest.raises(ValueError, match="no rows to write"):
        write_dataset([], "empty", T)
    with pytest.raises(FileNotFoundError, match="no MindRecord shard files at nowhere"):
        resolve_files("nowhere")


def test_expand_row_rejects_inconsistent_segments():
    with pytest.raises(ValueError, match=r"segment lengths \[5, 5\] exceed the row length 8"):
        expand_row(np.zeros(8, np.int32), np.zeros(8, np.int32), np.zeros(8, np.int32), np.array([5, 5]),
                   np.array([0, 0]))


def _records(n=40):
    recs = []
    for i in range(n):
        body = " <NEW_LINE> ".join(f"x{j} = {i} + {j}" for j in range(i % 7 + 1))
        recs.append({"_id": str(i), "docstring": f"Compute value number {i} and return it.",
                     "code": f"def f{i}(): <NEW_LINE> <INDENT> {body} <NEW_LINE> return x0 <NEW_LINE> <DEDENT>"})
    recs.append({"_id": "long", "docstring": "too long " * 200, "code": "pass"})
    return recs


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, pangu_vocab_model, python_tokens_file):
    from pangu_codeclm.tokenization.pangu import PanguTokenizer

    path = tmp_path_factory.mktemp("tok") / "partial"
    PanguTokenizer.from_vocab(pangu_vocab_model, separation="partial",
                              separate_tokens_file=python_tokens_file).save_pretrained(path)
    return str(path)


def test_prepare_cli_end_to_end(ms_cpu, tokenizer_dir, capsys):
    from pangu_codeclm.cli import main
    from pangu_codeclm.data.objectives import encode_pair
    from pangu_codeclm.data.records import write_records
    from pangu_codeclm.tokenization.pangu import PanguTokenizer

    recs = _records()
    write_records("r.jsonl.gz", recs)
    argv = ["prepare", "--records", "r.jsonl.gz", "--tokenizer", tokenizer_dir, "--objective", "corrupt_code",
            "--seq-length", "128", "--num-shards", "2", "--seed", "5", "--quiet"]
    assert main(argv + ["--out", "a", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 dropped (longer than seq_length 128)" in out
    meta = json.load(open("a/meta.json"))
    assert meta["records_read"] == 41 and meta["samples"] == 41 and meta["dropped_too_long"] == 1
    assert meta["objective"] == "corrupt_code" and meta["seq_length"] == 128 and meta["separation"] == "partial"
    assert meta["tokenizer"] == os.path.abspath(tokenizer_dir) and meta["num_shards"] == 2
    assert meta["shuffle_seed"] == 5 and meta["corruption"]["mask_id"] == 32012
    assert meta["corruption"]["random_high"] == 32477  # D6: ids drawn from the whole vocabulary
    import hashlib
    assert meta["records_sha256"] == hashlib.sha256(open("r.jsonl.gz", "rb").read()).hexdigest()

    # the stored rows hold exactly the (clean) samples encode_pair builds, shuffled with --seed as the reference
    tok = PanguTokenizer.from_pretrained(tokenizer_dir)
    all_samples = [encode_pair(tok, r["docstring"], r["code"], "corrupt_code") for r in recs]
    expected = [s for s in all_samples if len(s) <= 128]
    assert meta["tokens"] == sum(len(s) for s in expected)
    assert meta["target_tokens"] == sum(int((s.labels != -100).sum()) for s in expected)
    got = _read_all(create_dataset("a", batch_size=1, shuffle=False, drop_remainder=False))
    assert len(got) == meta["rows"]
    segs = []
    for b in got:
        ids, pos = b[0][0], b[2][0]
        starts = np.where((pos == 0) & (ids != tok.pad_id))[0].tolist() + [int((ids != tok.pad_id).sum())]
        segs += [ids[a:z].tolist() for a, z in zip(starts, starts[1:])]
    assert sorted(segs) == sorted(s.input_ids.tolist() for s in expected)
    order = reference_order([len(s) for s in all_samples], 128, 5)
    assert segs == [all_samples[i].input_ids.tolist() for i in order] != [s.input_ids.tolist() for s in expected]

    # one worker gives the same dataset as two
    assert main(argv + ["--out", "b", "--workers", "1"]) == 0
    capsys.readouterr()
    assert json.load(open("b/meta.json"))["tokens"] == meta["tokens"]
    one = _read_all(create_dataset("b", batch_size=1, shuffle=False, drop_remainder=False))
    assert len(one) == len(got)
    for bx, by in zip(got, one):  # same rows in the same order
        for x, y in zip(bx, by):
            np.testing.assert_array_equal(x, y)


def test_prepare_cli_errors(tokenizer_dir, capsys):
    from pangu_codeclm.cli import main

    with open("bad.jsonl", "w") as f:
        f.write(json.dumps({"_id": "1", "docstring": "d", "code": "pass"}) + "\n{oops\n")
    base = ["prepare", "--records", "bad.jsonl", "--tokenizer", tokenizer_dir, "--objective", "code",
            "--seq-length", "64", "--out", "o", "--workers", "1", "--quiet"]
    assert main(base) == 1
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err
    assert not os.path.exists("o")
    assert main(base + ["--skip-bad"]) == 0
    assert json.load(open("o/meta.json"))["records_bad"] == 1
    assert main(base + ["--skip-bad"]) == 1
    assert "o exists and is not empty" in capsys.readouterr().err
    assert main(base[:-1] + ["--skip-bad", "--seq-length", "2"]) == 1
    assert "--seq-length must be at least 4" in capsys.readouterr().err
