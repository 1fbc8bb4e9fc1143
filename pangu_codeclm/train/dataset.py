"""The training dataset registered with mindformers (DATASET `PanguCodeCLMDataset`).

Rows come from the MindRecord shards written by `pangu_codeclm.data.mindrecord` (expanded to the model columns by
`pangu_codeclm.data.packing.expand_row`). The order is fully determined by (seed, epoch): each epoch is a seeded
permutation of all rows, the global stream is cut into global batches, and rank r of D reads rows r, r+D, r+2D, ... of
that stream. So D ranks with per-rank batch b see, step for step, exactly the rows a single process with batch D*b
would see, and resuming at step s just starts the index list at s*D*b (no replay).
"""
import numpy as np

from ..data import mindrecord
from ..data.packing import COLUMNS, expand_row


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


def rank_indices(num_rows, steps, batch_size, rank_id=0, rank_size=1, start_step=0, seed=1234, shuffle=True):
    """Row indices rank `rank_id` reads for global steps [start_step, steps) with per-rank `batch_size`."""
    return [i for chunk in rank_epoch_chunks(num_rows, steps, batch_size, rank_id, rank_size, start_step, seed,
                                             shuffle) for i in chunk]


def rank_epoch_chunks(num_rows, steps, batch_size, rank_id=0, rank_size=1, start_step=0, seed=1234, shuffle=True):
    """`rank_indices` split at epoch boundaries (each chunk holds distinct rows, as MindRecord's sampler needs)."""
    if not 0 <= rank_id < rank_size:
        raise ValueError(f"rank_id {rank_id} is outside [0, {rank_size})")
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} is outside [0, {steps}]")
    global_batch = batch_size * rank_size
    stream = sample_order(num_rows, steps * global_batch, seed, shuffle)
    chunks = {}
    for pos in range(start_step * global_batch + rank_id, steps * global_batch, rank_size):
        chunks.setdefault(pos // num_rows, []).append(stream[pos])
    return [chunks[e] for e in sorted(chunks)]


def build_dataset(dataset_files, batch_size, steps, seq_length=None, rank_id=0, rank_size=1, start_step=0, seed=1234,
                  shuffle=True, num_parallel_workers=1):
    """A MindSpore dataset of `steps - start_step` batches of `batch_size` rows for this rank (model columns)."""
    import mindspore.dataset as ds
    files = mindrecord.resolve_files(dataset_files)
    num_rows = mindrecord.count_rows(files)
    if num_rows == 0:
        raise ValueError(f"train_dataset.dataset_files: {files[0]} holds no rows")
    chunks = rank_epoch_chunks(num_rows, steps, batch_size, rank_id, rank_size, start_step, seed, shuffle)
    if not chunks:
        raise ValueError(f"no batches left: start_step {start_step} of {steps}")
    data = None
    for chunk in chunks:
        part = ds.MindDataset(files, columns_list=list(mindrecord.STORED), sampler=ds.SubsetSampler(chunk))
        data = part if data is None else data + part
    if seq_length is not None:
        found = data.output_shapes()[0][-1]
        if found != seq_length:
            raise ValueError(f"{files[0]}: rows have length {found} but model_config.seq_length is {seq_length}")
    data = data.map(operations=expand_row, input_columns=list(mindrecord.STORED),
                    output_columns=list(COLUMNS), num_parallel_workers=num_parallel_workers)
    data = data.project(list(COLUMNS))
    return data.batch(batch_size, drop_remainder=True)


def _register():
    from mindformers.dataset.base_dataset import BaseDataset
    from mindformers.tools.register import MindFormerModuleType, MindFormerRegister

    @MindFormerRegister.register(MindFormerModuleType.DATASET)
    class PanguCodeCLMDataset(BaseDataset):
        """mindformers DATASET: this rank's shard of the packed CodeCLM rows, in resumable order.

        `dataset_config` keys: dataset_files, batch_size (per rank), steps (global steps of the whole run), seq_length,
        start_step (resume position), seed, shuffle, num_parallel_workers. Rank and size come from the launcher.
        """

        def __new__(cls, dataset_config=None, **kwargs):
            cfg = dict(dataset_config or {})
            cfg.update(kwargs)
            for key in ("dataset_files", "batch_size", "steps"):
                if cfg.get(key) in (None, "", []):
                    raise ValueError(f"train_dataset.{key}: required by PanguCodeCLMDataset")
            shard_id, num_shards = cls._generate_shard_info()  # (None, None) under semi-auto full batch
            return build_dataset(cfg["dataset_files"], int(cfg["batch_size"]), int(cfg["steps"]),
                                 seq_length=cfg.get("seq_length"), rank_id=shard_id or 0,
                                 rank_size=num_shards or 1, start_step=int(cfg.get("start_step") or 0),
                                 seed=int(cfg.get("seed", 1234)), shuffle=bool(cfg.get("shuffle", True)),
                                 num_parallel_workers=int(cfg.get("num_parallel_workers") or 1))

    return PanguCodeCLMDataset


PanguCodeCLMDataset = _register()
