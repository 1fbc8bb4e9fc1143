"""The training dataset registered with mindformers (DATASET `PanguCodeCLMDataset`).

Rows come from the MindRecord shards written by `pangu_codeclm.data.mindrecord`. The order is fully determined by
(seed, epoch): each epoch is a seeded permutation of all rows, the global stream is cut into global batches, and rank r
of D reads rows r, r+D, r+2D, ... of that stream. So D ranks with per-rank batch b see, step for step, exactly the rows a
single process with batch D*b would see, and resuming at step s just starts the index list at s*D*b (no replay).
"""
import glob
import os

import numpy as np

COLUMNS = ("input_ids", "labels", "position_ids", "attention_mask", "docstr_mask")


def resolve_files(dataset_files):
    """Expand a path, directory, glob or list of them into the sorted list of MindRecord shard files."""
    if isinstance(dataset_files, (str, os.PathLike)):
        dataset_files = [dataset_files]
    files = []
    for item in dataset_files or []:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = [p for p in glob.glob(os.path.join(item, "*")) if _is_shard(p)]
        elif any(ch in item for ch in "*?["):
            found = [p for p in glob.glob(item) if _is_shard(p)]
        elif os.path.isfile(item):
            found = [item]
        else:
            raise FileNotFoundError(f"train_dataset.dataset_files: {item} does not exist")
        if not found:
            raise FileNotFoundError(f"train_dataset.dataset_files: no MindRecord shard found in {item}")
        files.extend(sorted(found))
    if not files:
        raise ValueError("train_dataset.dataset_files: expected at least one MindRecord file, got none")
    return files


def _is_shard(path):
    return os.path.isfile(path) and not path.endswith((".db", ".json", ".txt", ".md"))


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
    if not 0 <= rank_id < rank_size:
        raise ValueError(f"rank_id {rank_id} is outside [0, {rank_size})")
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} is outside [0, {steps}]")
    global_batch = batch_size * rank_size
    stream = sample_order(num_rows, steps * global_batch, seed, shuffle)
    return stream[start_step * global_batch + rank_id::rank_size]


def count_rows(files):
    import mindspore.dataset as ds
    return ds.MindDataset(files, columns_list=[COLUMNS[0]], shuffle=False).get_dataset_size()


def build_dataset(dataset_files, batch_size, steps, seq_length=None, rank_id=0, rank_size=1, start_step=0, seed=1234,
                  shuffle=True, num_parallel_workers=1, columns=COLUMNS):
    """A MindSpore dataset of `steps - start_step` batches of `batch_size` rows for this rank."""
    import mindspore.dataset as ds
    files = resolve_files(dataset_files)
    num_rows = count_rows(files)
    if num_rows == 0:
        raise ValueError(f"train_dataset.dataset_files: {files[0]} holds no rows")
    indices = rank_indices(num_rows, steps, batch_size, rank_id, rank_size, start_step, seed, shuffle)
    data = ds.MindDataset(files, columns_list=list(columns), sampler=ds.SubsetSampler(indices),
                          num_parallel_workers=num_parallel_workers)
    if seq_length is not None:
        _check_seq_length(data, seq_length, files[0])
    return data.batch(batch_size, drop_remainder=True)


def _check_seq_length(data, seq_length, path):
    shapes = data.output_shapes()
    if shapes and shapes[0] and shapes[0][-1] != seq_length:
        raise ValueError(f"{path}: rows have length {shapes[0][-1]} but the config's seq_length is {seq_length}")


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
            from mindformers.tools.utils import get_real_group_size, get_real_rank
            cfg = dict(dataset_config or {})
            cfg.update(kwargs)
            for key in ("dataset_files", "batch_size", "steps"):
                if cfg.get(key) in (None, "", []):
                    raise ValueError(f"train_dataset.{key}: required by PanguCodeCLMDataset")
            return build_dataset(cfg["dataset_files"], int(cfg["batch_size"]), int(cfg["steps"]),
                                 seq_length=cfg.get("seq_length"), rank_id=get_real_rank(),
                                 rank_size=get_real_group_size(), start_step=int(cfg.get("start_step") or 0),
                                 seed=int(cfg.get("seed", 1234)), shuffle=bool(cfg.get("shuffle", True)),
                                 num_parallel_workers=int(cfg.get("num_parallel_workers") or 1))

    return PanguCodeCLMDataset


PanguCodeCLMDataset = _register()
