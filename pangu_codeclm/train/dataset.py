"""The training dataset registered with mindformers (DATASET `PanguCodeCLMDataset`) and its validation split.

Rows come from the MindRecord shards written by `pangu_codeclm.data.mindrecord` (expanded to the model columns by
`pangu_codeclm.data.packing.expand_row`). First `validation_fraction` of the packed rows (0.1%) is held out as the
reference does (`train_test_split(test_size=0.001, shuffle=True, seed=42)`: the first ceil(0.001 n) of
`default_rng(42).permutation(n)` are validation, the rest, in that order, are training rows). The training order is
then fully determined by (seed, epoch): each epoch is a seeded permutation of the training rows, the global stream is
cut into global batches, and rank r of D reads positions r, r+D, r+2D, ... of that stream. So D ranks with per-rank
batch b see, step for step, exactly the rows a single process with batch D*b would see, and resuming at step s just
starts at position s*D*b (no replay). For Corrupt Code CLM each row is corrupted as it is read, seeded by (seed, its
stream position): a fresh corruption every epoch, the same one after a resume or with another device count.
"""
import math

import numpy as np

from ..data import mindrecord
from ..data.objectives import corrupt_row
from ..data.packing import COLUMNS, expand_row
from ..sample_format import IGNORE_INDEX

VALIDATION_FRACTION = 0.001
SPLIT_SEED = 42


def split_rows(num_rows, validation_fraction=VALIDATION_FRACTION, seed=SPLIT_SEED):
    """(training row ids, validation row ids) as datasets' `train_test_split(test_size, shuffle=True, seed)`."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"pangu.validation_fraction must be in [0, 1), got {validation_fraction}")
    n_val = math.ceil(validation_fraction * num_rows)
    if num_rows - n_val < 1:
        raise ValueError(f"{num_rows} row(s) leave no training rows after holding out {n_val} for validation")
    if n_val == 0:
        return list(range(num_rows)), []
    perm = np.random.default_rng(seed).permutation(num_rows)
    return perm[n_val:].tolist(), perm[:n_val].tolist()


def sample_order(num_rows, num_samples, seed, shuffle=True):
    """Global row stream: epoch e is permutation(seed + e) of range(num_rows) (identity when not shuffling)."""
    order = []
    epoch = 0
    while len(order) < num_samples:
        if shuffle:
            order.extend(np.random.RandomState(seed + epoch).permutation(num_rows).tolist())
        else:
            order.extend(range(num_rows))
        epoch += 1
    return order[:num_samples]


def rank_positions(steps, batch_size, rank_id=0, rank_size=1, start_step=0):
    """Positions in the global row stream that rank `rank_id` reads for steps [start_step, steps)."""
    if not 0 <= rank_id < rank_size:
        raise ValueError(f"rank_id {rank_id} is outside [0, {rank_size})")
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} is outside [0, {steps}]")
    global_batch = batch_size * rank_size
    return list(range(start_step * global_batch + rank_id, steps * global_batch, rank_size))


def rank_indices(num_rows, steps, batch_size, rank_id=0, rank_size=1, start_step=0, seed=1234, shuffle=True):
    """Row indices rank `rank_id` reads for global steps [start_step, steps) with per-rank `batch_size`."""
    return [i for chunk in rank_epoch_chunks(num_rows, steps, batch_size, rank_id, rank_size, start_step, seed,
                                             shuffle) for i in chunk]


def rank_epoch_chunks(num_rows, steps, batch_size, rank_id=0, rank_size=1, start_step=0, seed=1234, shuffle=True):
    """`rank_indices` split at epoch boundaries (each chunk holds distinct rows, as MindRecord's sampler needs)."""
    positions = rank_positions(steps, batch_size, rank_id, rank_size, start_step)
    stream = sample_order(num_rows, steps * batch_size * rank_size, seed, shuffle)
    chunks = {}
    for pos in positions:
        chunks.setdefault(pos // num_rows, []).append(stream[pos])
    return [chunks[e] for e in sorted(chunks)]


class RowExpander:
    """Stored columns + stream position → the five model columns; corrupts the docstring when `corruption` (dict:
    mask_id, random_high, seed) is given."""

    def __init__(self, corruption=None):
        self.corruption = dict(corruption) if corruption else None

    def __call__(self, input_ids, labels, docstr_mask, segment_lengths, prefix_lengths, position):
        cols = expand_row(input_ids, labels, docstr_mask, segment_lengths, prefix_lengths)
        if self.corruption is None:
            return cols
        c = self.corruption
        corrupted = corrupt_row(cols[0], cols[4], c["seed"], int(np.asarray(position).reshape(-1)[0]), c["mask_id"],
                                c["random_high"])
        return (corrupted,) + tuple(cols[1:])


def _rows_dataset(files, row_ids, positions, corruption, num_parallel_workers):
    """MindDataset over `row_ids` (in order) with each row's stream position, expanded to the model columns."""
    import mindspore.dataset as ds
    rows = ds.MindDataset(files, columns_list=list(mindrecord.STORED), sampler=ds.SubsetSampler(row_ids))
    pos = ds.NumpySlicesDataset({"stream_position": np.asarray(positions, np.int64)}, shuffle=False)
    data = ds.zip((rows, pos))
    return data.map(operations=RowExpander(corruption), input_columns=list(mindrecord.STORED) + ["stream_position"],
                    output_columns=list(COLUMNS), num_parallel_workers=num_parallel_workers)


def build_dataset(dataset_files, batch_size, steps, seq_length=None, rank_id=0, rank_size=1, start_step=0, seed=1234,
                  shuffle=True, num_parallel_workers=1, validation_fraction=VALIDATION_FRACTION,
                  split_seed=SPLIT_SEED, corruption=None):
    """A MindSpore dataset of `steps - start_step` batches of `batch_size` training rows for this rank (model
    columns); `corruption` (mask_id, random_high) turns on Corrupt Code CLM, seeded by `seed`."""
    files = mindrecord.resolve_files(dataset_files)
    num_rows = mindrecord.count_rows(files)
    if num_rows == 0:
        raise ValueError(f"train_dataset.dataset_files: {files[0]} holds no rows")
    train_rows, _ = split_rows(num_rows, validation_fraction, split_seed)
    positions = rank_positions(steps, batch_size, rank_id, rank_size, start_step)
    chunks = rank_epoch_chunks(len(train_rows), steps, batch_size, rank_id, rank_size, start_step, seed, shuffle)
    if not chunks:
        raise ValueError(f"no batches left: start_step {start_step} of {steps}")
    corruption = dict(corruption, seed=seed) if corruption else None
    data, done = None, 0
    for chunk in chunks:
        part = _rows_dataset(files, [train_rows[i] for i in chunk], positions[done:done + len(chunk)], corruption,
                             num_parallel_workers)
        done += len(chunk)
        data = part if data is None else data + part
    if seq_length is not None:
        found = data.output_shapes()[0][-1]
        if found != seq_length:
            raise ValueError(f"{files[0]}: rows have length {found} but model_config.seq_length is {seq_length}")
    data = data.project(list(COLUMNS))
    return data.batch(batch_size, drop_remainder=True)


def validation_batches(dataset_files, batch_size, validation_fraction=VALIDATION_FRACTION, split_seed=SPLIT_SEED,
                       corruption=None):
    """The held-out rows as lists of numpy batches (model columns); the last batch is filled up with padding rows
    (no targets), so every validation row counts. Empty when nothing is held out. With `corruption` (mask_id,
    random_high, seed) the rows are corrupted as the reference's collator corrupts its eval batches, drawn once
    (seeded by the row's place in the validation set), so every evaluation sees the same inputs."""
    files = mindrecord.resolve_files(dataset_files)
    _, val_rows = split_rows(mindrecord.count_rows(files), validation_fraction, split_seed)
    if not val_rows:
        return []
    data = _rows_dataset(files, val_rows, range(len(val_rows)), corruption, 1).project(list(COLUMNS))
    rows = [tuple(np.asarray(c) for c in r) for r in data.create_tuple_iterator(output_numpy=True, num_epochs=1)]
    pad_row = tuple(np.zeros_like(c) for c in rows[0])
    pad_row[1][:] = IGNORE_INDEX
    np.fill_diagonal(pad_row[3], 1.0)
    while len(rows) % batch_size:
        rows.append(pad_row)
    return [[np.stack(col) for col in zip(*rows[i:i + batch_size])] for i in range(0, len(rows), batch_size)]


def _register():
    from mindformers.dataset.base_dataset import BaseDataset
    from mindformers.tools.register import MindFormerModuleType, MindFormerRegister

    @MindFormerRegister.register(MindFormerModuleType.DATASET)
    class PanguCodeCLMDataset(BaseDataset):
        """mindformers DATASET: this rank's shard of the packed CodeCLM training rows, in resumable order.

        `dataset_config` keys: dataset_files, batch_size (per rank), steps (global steps of the whole run), seq_length,
        start_step (resume position), seed, shuffle, num_parallel_workers, validation_fraction, split_seed,
        corruption (Corrupt Code CLM: mask_id, random_high). Rank and size come from the launcher.
        """

        def __new__(cls, dataset_config=None, **kwargs):
            cfg = dict(dataset_config or {})
            cfg.update(kwargs)
            for key in ("dataset_files", "batch_size", "steps"):
                if cfg.get(key) in (None, "", []):
                    raise ValueError(f"train_dataset.{key}: required by PanguCodeCLMDataset")
            shard_id, num_shards = cls._generate_shard_info()  # (None, None) under semi-auto full batch
            fraction = cfg.get("validation_fraction")
            return build_dataset(cfg["dataset_files"], int(cfg["batch_size"]), int(cfg["steps"]),
                                 seq_length=cfg.get("seq_length"), rank_id=shard_id or 0,
                                 rank_size=num_shards or 1, start_step=int(cfg.get("start_step") or 0),
                                 seed=int(cfg.get("seed", 1234)), shuffle=bool(cfg.get("shuffle", True)),
                                 num_parallel_workers=int(cfg.get("num_parallel_workers") or 1),
                                 validation_fraction=VALIDATION_FRACTION if fraction is None else float(fraction),
                                 split_seed=int(cfg.get("split_seed", SPLIT_SEED)),
                                 corruption=dict(cfg["corruption"]) if cfg.get("corruption") else None)

    return PanguCodeCLMDataset


PanguCodeCLMDataset = _register()
