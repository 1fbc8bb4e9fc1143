"""(docstring, code) records in the `huawei-noah/python_text2code` format: streaming read and atomic write.

A record is a dict with `_id` (str), `docstring` (str) and `code` (str, with ` <NEW_LINE> ` / ` <INDENT> ` /
` <DEDENT> ` markers). Supported files: `.jsonl`, `.jsonl.gz` (one JSON object per line) and `.parquet`.
"""
import contextlib
import gzip
import json
import os

from pangu_codeclm.io_utils import atomic_path

FIELDS = ("_id", "docstring", "code")
PARQUET_BATCH = 4096


class RecordError(ValueError):
    """A malformed record; the message names the file, the line (or parquet row) and what was expected."""


def file_kind(path):
    """'jsonl', 'jsonl.gz' or 'parquet' from the file name; anything else is an error."""
    name = os.fspath(path).lower()
    for kind in ("jsonl.gz", "jsonl", "parquet"):
        if name.endswith("." + kind):
            return kind
    raise RecordError(f"{path}: unsupported record file; expected a name ending in .jsonl, .jsonl.gz or .parquet")


def validate_record(obj, where):
    """Check one record; return a clean dict with exactly FIELDS (an int `_id` becomes its string)."""
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object with keys {list(FIELDS)}, found {type(obj).__name__}")
    missing = [key for key in FIELDS if key not in obj]
    if missing:
        raise RecordError(f"{where}: missing key(s) {missing}; a record needs {list(FIELDS)}")
    rid = obj["_id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise RecordError(f"{where}: key '_id' must be a string (or int), found {type(rid).__name__}")
    for key in ("docstring", "code"):
        value = obj[key]
        if not isinstance(value, str):
            raise RecordError(f"{where}: key '{key}' must be a string, found {type(value).__name__}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a JSON "\ud800" escape
                raise RecordError(f"{where}: key '{key}' is not valid Unicode text ({exc.reason} at character "
                                  f"{exc.start})") from None
    if not obj["code"].strip():
        raise RecordError(f"{where}: key 'code' is empty")
    return {"_id": str(rid), "docstring": obj["docstring"], "code": obj["code"]}


def _iter_json_lines(path, opener):
    with opener(path) as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield where, RecordError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, RecordError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            yield where, obj


def _iter_parquet_rows(path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise RecordError(f"{path}: cannot read parquet ({type(exc).__name__}: {exc})") from None
    names = set(pf.schema_arrow.names)
    missing = [key for key in FIELDS if key not in names]
    if missing:
        raise RecordError(f"{path}: parquet columns {sorted(names)} lack {missing}; a record needs {list(FIELDS)}")
    row = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=list(FIELDS)):
        for obj in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", obj


def iter_records(path, skip_bad=False, stats=None):
    """Yield validated records from `path`, streaming.

    A malformed record raises RecordError naming `file:line` (`file:row N`, 1-based, for parquet) and the reason;
    with `skip_bad=True` it is skipped and counted in `stats["bad"]` (`stats` is an optional dict updated in place,
    also with `stats["read"]`).
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"record file not found: {path}")
    if kind == "parquet":
        rows = _iter_parquet_rows(path)
    else:
        rows = _iter_json_lines(path, gzip.open if kind == "jsonl.gz" else lambda p: open(p, "rb"))
    if stats is None:
        stats = {}
    stats.setdefault("read", 0)
    stats.setdefault("bad", 0)
    try:
        for where, obj in rows:
            try:
                if isinstance(obj, RecordError):
                    raise obj
                record = validate_record(obj, where)
            except RecordError:
                if not skip_bad:
                    raise
                stats["bad"] += 1
                continue
            stats["read"] += 1
            yield record
    except (OSError, EOFError) as exc:  # truncated gzip, unreadable file
        raise RecordError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def read_records(path, skip_bad=False):
    """All records of `path` as a list (see iter_records)."""
    return list(iter_records(path, skip_bad=skip_bad))


class RecordWriter:
    """Stream records to `path` (kind from the extension); the file appears only when the writer closes cleanly.

    Use as a context manager: `with RecordWriter(path) as w: w.write(rec)`. On an exception nothing is left behind.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.kind = file_kind(self.path)
        self.count = 0
        self._stack = None
        self._file = None
        self._parquet = None
        self._batch = []

    def __enter__(self):
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(self.path))
        if self.kind == "jsonl":
            self._file = stack.enter_context(open(tmp, "wb"))
        elif self.kind == "jsonl.gz":
            self._file = stack.enter_context(gzip.open(tmp, "wb"))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([(key, pa.string()) for key in FIELDS])
            self._parquet = pq.ParquetWriter(tmp, self._schema)
            stack.callback(self._parquet.close)
        self._stack = stack
        return self

    def write(self, record):
        """Validate and append one record."""
        record = validate_record(record, f"{self.path}: record {self.count + 1} to write")
        if self._parquet is not None:
            self._batch.append(record)
            if len(self._batch) >= PARQUET_BATCH:
                self._flush_parquet()
        else:
            self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self.count += 1

    def _flush_parquet(self):
        import pyarrow as pa

        if self._batch:
            self._parquet.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self._parquet is not None:
            self._flush_parquet()
        # closing the stack closes the file, then renames (success) or removes (error) the temp file
        return self._stack.__exit__(exc_type, exc, tb)


def write_records(path, records):
    """Write an iterable of records to `path` atomically; return how many were written."""
    with RecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return writer.count
