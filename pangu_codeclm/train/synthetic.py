"""Synthetic packed rows for smoke runs, tests and the throughput benchmark (no tokenizer needed).

Every row holds `segments` samples of equal length, each `doc_len` docstring tokens followed by code tokens that are the
targets (Code CLM layout), so every row has the same number of target tokens.
"""
import numpy as np

from ..data.mindrecord import write_dataset
from ..data.packing import PackedRow
from ..sample_format import IGNORE_INDEX


def synthetic_rows(num_rows, seq_length, vocab_size, segments=2, doc_len=4, seed=0):
    """Yield `num_rows` PackedRows with random ids in [0, vocab_size - 16) (clear of the special ids at the end)."""
    if seq_length % segments or seq_length // segments <= doc_len + 1:
        raise ValueError(f"seq_length {seq_length} cannot hold {segments} segments of > {doc_len + 1} tokens")
    rng = np.random.RandomState(seed)
    seg = seq_length // segments
    high = max(2, vocab_size - 16)
    for _ in range(num_rows):
        ids = rng.randint(0, high, seq_length).astype(np.int32)
        labels = ids.copy()
        docstr = np.zeros(seq_length, np.int32)
        for s in range(segments):
            labels[s * seg:s * seg + doc_len] = IGNORE_INDEX
            docstr[s * seg:s * seg + doc_len] = 1
        yield PackedRow(ids, labels, docstr, np.full(segments, seg, np.int32), np.zeros(segments, np.int32))


def write_synthetic_dataset(out_dir, num_rows, seq_length, vocab_size, segments=2, doc_len=4, seed=0, overwrite=True):
    """Write a synthetic MindRecord dataset directory; returns its meta dict."""
    rows = synthetic_rows(num_rows, seq_length, vocab_size, segments, doc_len, seed)
    return write_dataset(rows, out_dir, seq_length, meta={"synthetic": True, "vocab_size": vocab_size},
                         overwrite=overwrite)
