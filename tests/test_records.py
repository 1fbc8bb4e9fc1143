"""Record files: round trips in every format, the promised errors for malformed input, atomic writes."""
import gzip
import json
import os

import pytest

from pangu_codeclm.data.records import RecordError, RecordWriter, iter_records, read_records, write_records

RECORDS = [
    {"_id": "a1", "docstring": "Add two numbers.",
     "code": "def add(a, b): <NEW_LINE> <INDENT> return a + b <NEW_LINE> <DEDENT>"},
    {"_id": "b2", "docstring": "Ünïcode — docstring\nwith two lines",
     "code": "def f(): <NEW_LINE> <INDENT> pass <NEW_LINE> <DEDENT>"},
    {"_id": "c3", "docstring": "", "code": "x = '<NEW_LINE>'"},
]


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz", "r.parquet"])
def test_round_trip_every_format(name):
    assert write_records(name, RECORDS) == 3
    assert read_records(name) == RECORDS
    assert not [f for f in os.listdir(".") if f.endswith(".tmp")]


def test_int_id_is_accepted_as_string():
    with open("r.jsonl", "w") as f:
        f.write(json.dumps({"_id": 7, "docstring": "d", "code": "pass"}) + "\n")
    assert read_records("r.jsonl") == [{"_id": "7", "docstring": "d", "code": "pass"}]


def _write_lines(path, lines):
    data = ("\n".join(lines) + "\n").encode()
    if path.endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


GOOD = json.dumps(RECORDS[0])


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"_id": "x", "code": "pass"}), "missing key(s) ['docstring']"),
    (json.dumps({"_id": "x", "docstring": 3, "code": "pass"}), "key 'docstring' must be a string, found int"),
    (json.dumps({"_id": None, "docstring": "", "code": "pass"}), "key '_id' must be a string"),
    (json.dumps({"_id": "x", "docstring": "", "code": "  "}), "key 'code' is empty"),
    ('{"_id": "x", "docstring": "caf\\u00e9 \\ud800", "code": "pass"}',
     "key 'docstring' is not valid Unicode text (surrogates not allowed at character 5)"),
])
@pytest.mark.parametrize("name", ["bad.jsonl", "bad.jsonl.gz"])
def test_malformed_line_names_file_line_and_reason(name, bad, reason):
    _write_lines(name, [GOOD, "", bad, GOOD])  # the blank line still counts: the bad record is on line 3
    with pytest.raises(RecordError) as err:
        read_records(name)
    assert f"{name}:3: " in str(err.value)
    assert reason in str(err.value)
    stats = {}
    assert list(iter_records(name, skip_bad=True, stats=stats)) == [RECORDS[0], RECORDS[0]]
    assert stats == {"read": 2, "bad": 1}


def test_invalid_utf8_is_reported_with_line():
    with open("u.jsonl", "wb") as f:
        f.write(GOOD.encode() + b"\n" + b'{"_id": "\xff"}\n')
    with pytest.raises(RecordError, match=r"u\.jsonl:2: not valid UTF-8"):
        read_records("u.jsonl")


def test_parquet_bad_row_and_missing_column():
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"_id": ["a", "b"], "docstring": ["d", None], "code": ["pass", "pass"]}), "n.parquet")
    with pytest.raises(RecordError, match=r"n\.parquet:row 2: key 'docstring' must be a string, found NoneType"):
        read_records("n.parquet")
    assert len(read_records("n.parquet", skip_bad=True)) == 1
    pq.write_table(pa.table({"_id": ["a"], "code": ["pass"]}), "m.parquet")
    with pytest.raises(RecordError, match=r"m\.parquet: parquet columns .* lack \['docstring'\]"):
        read_records("m.parquet")


def test_truncated_gzip_and_unknown_extension_and_missing_file():
    write_records("t.jsonl.gz", RECORDS * 50)
    data = open("t.jsonl.gz", "rb").read()
    with open("t.jsonl.gz", "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(RecordError, match=r"t\.jsonl\.gz: cannot read"):
        read_records("t.jsonl.gz")
    with pytest.raises(RecordError, match="expected a name ending in .jsonl, .jsonl.gz or .parquet"):
        read_records("x.csv")
    with pytest.raises(FileNotFoundError, match="record file not found: nope.jsonl"):
        read_records("nope.jsonl")


@pytest.mark.parametrize("name", ["w.jsonl", "w.parquet"])
def test_failed_write_leaves_nothing(name):
    with pytest.raises(RecordError, match="key 'code' must be a string"):
        with RecordWriter(name) as w:
            w.write(RECORDS[0])
            w.write({"_id": "z", "docstring": "", "code": None})
    assert os.listdir(".") == []
    write_records(name, RECORDS[:1])  # an existing file is only replaced by a complete one
    with pytest.raises(RuntimeError):
        with RecordWriter(name) as w:
            w.write(RECORDS[1])
            raise RuntimeError("interrupted")
    assert read_records(name) == RECORDS[:1]
    assert os.listdir(".") == [name]
