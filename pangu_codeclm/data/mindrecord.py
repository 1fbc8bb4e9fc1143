"""Packed rows ⇄ MindRecord shards, and the training dataset reader.

A dataset is a directory holding `data.mindrecord*` shard files (+ their `.db` index files) and `meta.json`. It is
written in a temporary sibling directory and renamed into place once every shard is committed, so a reader never sees
a half-written dataset.

Stored columns (1-D only): input_ids, labels, docstr_mask [T] and segment_lengths, prefix_lengths [n segments].
`create_dataset` rebuilds position ids and the [T,T] mask per row and yields exactly the columns of
docs/interfaces.md, in order: input_ids, labels, position_ids, attention_mask, docstr_mask.
"""
import glob
import os

import numpy as np

from pangu_codeclm.data.packing import COLUMNS, expand_row
from pangu_codeclm.io_utils import atomic_directory, atomic_write_json, load_json

FILE_STEM = "data.mindrecord"
META_NAME = "meta.json"
STORED = ("input_ids", "labels", "docstr_mask", "segment_lengths", "prefix_lengths")
WRITE_BATCH = 256


def _schema(seq_length):
    return {"input_ids": {"type": "int32", "shape": [seq_length]},
            "labels": {"type": "int32", "shape": [seq_length]},
            "docstr_mask": {"type": "int32", "shape": [seq_length]},
            "segment_lengths": {"type": "int32", "shape": [-1]},
            "prefix_lengths": {"type": "int32", "shape": [-1]}}


def _row_dict(row):
    return {name: np.ascontiguousarray(getattr(row, name), dtype=np.int32) for name in STORED}


def write_dataset(rows, out_dir, seq_length, num_shards=1, meta=None, overwrite=False, progress=None,
                  late_meta=None):
    """Write PackedRows to MindRecord shards under `out_dir` (atomically) with `meta.json`; return the meta dict.

    `meta` is merged into the written meta.json together with `rows`, `num_shards`, `seq_length` and `files`;
    `late_meta()` (optional) is called once every row is consumed and its dict merged too (counts of a generator).
    `progress` is an optional callable(n_rows_written_now) for a progress bar.
    """
    from mindspore.mindrecord import FileWriter

    if num_shards < 1 or num_shards > 1000:
        raise ValueError(f"num_shards must be in 1..1000 (MindRecord's limit), got {num_shards}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    with atomic_directory(out_dir, overwrite, allow_empty=True) as tmp:
        writer = FileWriter(os.path.join(tmp, FILE_STEM), shard_num=num_shards, overwrite=True)
        writer.add_schema(_schema(seq_length), "pangu_codeclm packed rows")
        n_rows, batch = 0, []
        for row in rows:
            if len(row.input_ids) != seq_length:
                raise ValueError(f"row {n_rows + len(batch)} has length {len(row.input_ids)}, expected seq_length {seq_length}")
            batch.append(_row_dict(row))
            if len(batch) >= WRITE_BATCH:
                writer.write_raw_data(batch)
                n_rows += len(batch)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            writer.write_raw_data(batch)
            n_rows += len(batch)
            if progress:
                progress(len(batch))
        if n_rows == 0:
            raise ValueError(f"no rows to write to {out_dir}: every sample was dropped or the input was empty")
        writer.commit()
        files = sorted(f for f in os.listdir(tmp) if f.startswith(FILE_STEM) and not f.endswith(".db"))
        full_meta = dict(meta or {})
        full_meta.update(late_meta() if late_meta else {})
        full_meta.update({"rows": n_rows, "num_shards": num_shards, "seq_length": seq_length, "files": files,
                          "columns": list(COLUMNS), "stored_columns": list(STORED)})
        atomic_write_json(os.path.join(tmp, META_NAME), full_meta)
    return full_meta


def resolve_files(path_or_glob):
    """Shard files for a dataset directory, a single shard file, a glob, or a list of any of these; errors name what
    was looked for."""
    if isinstance(path_or_glob, (list, tuple)):
        if not path_or_glob:
            raise FileNotFoundError("no MindRecord shard files: the list of dataset paths is empty")
        return [f for p in path_or_glob for f in resolve_files(p)]
    p = os.fspath(path_or_glob)
    if os.path.isdir(p):
        meta_path = os.path.join(p, META_NAME)
        if os.path.exists(meta_path):
            files = [os.path.join(p, n) for n in _read_meta(meta_path).get("files", [])]
        else:
            files = sorted(glob.glob(os.path.join(p, FILE_STEM + "*")))
    else:
        files = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
    files = [f for f in files if not f.endswith(".db") and os.path.basename(f) != META_NAME]
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise FileNotFoundError(f"no MindRecord shard files at {p}" + (f" (missing: {missing})" if missing else
                                "; expected a directory written by `pangu-codeclm prepare`, a shard file or a glob"))
    return files


def dataset_info(path):
    """meta.json of a dataset directory (rows, tokens, objective, …); otherwise (a file, glob or list) the row
    count."""
    p = path if isinstance(path, (list, tuple)) else os.fspath(path)
    meta_path = os.path.join(p, META_NAME) if isinstance(p, str) and os.path.isdir(p) else None
    if meta_path and os.path.exists(meta_path):
        return _read_meta(meta_path)
    return {"rows": count_rows(resolve_files(p))}


def _read_meta(meta_path):
    meta = load_json(meta_path, what="dataset meta.json")
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def count_rows(files):
    """Number of rows in the MindRecord shard `files`."""
    import mindspore.dataset as ds

    return ds.MindDataset(files, columns_list=[STORED[0]], shuffle=False).get_dataset_size()


def shard_indices(num_rows, num_shards=1, shard_id=0, seed=1234, shuffle=True):
    """Row indices one shard reads: a permutation (`seed`) of all rows dealt round-robin to the shards, each shard
    keeping `num_rows // num_shards` (so shards are disjoint and equally long; at most num_shards - 1 rows are left
    out)."""
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
    per_shard = num_rows // num_shards
    if per_shard == 0:
        raise ValueError(f"{num_rows} row(s) cannot feed {num_shards} shards: every shard needs at least one row")
    order = np.random.RandomState(seed).permutation(num_rows) if shuffle else np.arange(num_rows)
    return order[shard_id::num_shards][:per_shard].tolist()


def create_dataset(path_or_glob, batch_size, num_shards=1, shard_id=0, seed=1234, shuffle=True, drop_remainder=True,
                   repeat=1, num_parallel_workers=1):
    """A MindSpore dataset of batches (input_ids, labels, position_ids, attention_mask, docstr_mask).

    Shard `shard_id` of `num_shards` (one per data-parallel rank) reads a disjoint part of the rows
    (`shard_indices`); the order is a pure function of `seed`; `repeat` epochs repeat that order.
    """
    import mindspore.dataset as ds

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    files = resolve_files(path_or_glob)
    num_rows = count_rows(files)
    indices = shard_indices(num_rows, num_shards, shard_id, int(seed), shuffle)
    data = ds.MindDataset(files, columns_list=list(STORED), sampler=ds.SubsetSampler(indices))
    data = data.map(operations=expand_row, input_columns=list(STORED), output_columns=list(COLUMNS),
                    num_parallel_workers=num_parallel_workers)
    data = data.project(list(COLUMNS))
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    return data.repeat(repeat) if repeat and repeat > 1 else data
