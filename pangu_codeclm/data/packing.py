"""Greedy in-order packing of samples into rows of `seq_length`, and the per-row arrays built from segment lengths.

A packed row stores only 1-D data: `input_ids`, `labels`, `docstr_mask` (length T), `segment_lengths` and
`prefix_lengths` (one entry per packed sample). Position ids and the T×T "may attend" mask are rebuilt from the
segment lengths (`position_ids`, `attention_mask`), so shards never hold T×T masks.

Padding (`<pad>`, label −100, docstr_mask 0) fills the tail of a row; a padding position has position id 0 and
attends only to itself (so its softmax row is well defined); no real token attends to padding.
"""
from dataclasses import dataclass

import numpy as np

from pangu_codeclm.sample_format import IGNORE_INDEX

COLUMNS = ("input_ids", "labels", "position_ids", "attention_mask", "docstr_mask")


@dataclass
class PackedRow:
    input_ids: np.ndarray
    labels: np.ndarray
    docstr_mask: np.ndarray
    segment_lengths: np.ndarray
    prefix_lengths: np.ndarray


@dataclass
class PackStats:
    samples: int = 0
    packed: int = 0
    dropped_too_long: int = 0
    rows: int = 0
    tokens: int = 0          # real (non-padding) tokens in rows
    target_tokens: int = 0   # labels != -100
    seq_length: int = 0

    def as_dict(self):
        return {"samples": self.samples, "packed": self.packed, "dropped_too_long": self.dropped_too_long,
                "rows": self.rows, "tokens": self.tokens, "target_tokens": self.target_tokens,
                "padding_tokens": self.rows * self.seq_length - self.tokens}


def _make_row(samples, seq_length, pad_id):
    input_ids = np.full(seq_length, pad_id, np.int32)
    labels = np.full(seq_length, IGNORE_INDEX, np.int32)
    docstr_mask = np.zeros(seq_length, np.int32)
    start = 0
    for s in samples:
        end = start + len(s)
        input_ids[start:end] = s.input_ids
        labels[start:end] = s.labels
        docstr_mask[start:end] = s.docstr_mask
        start = end
    return PackedRow(input_ids, labels, docstr_mask,
                     np.array([len(s) for s in samples], np.int32),
                     np.array([s.prefix_len for s in samples], np.int32))


def pack_samples(samples, seq_length, pad_id, stats=None):
    """Yield PackedRows: samples go in order into the current row until the next one does not fit.

    A sample longer than `seq_length` is dropped and counted in `stats.dropped_too_long`.
    """
    if seq_length < 1:
        raise ValueError(f"seq_length must be positive, got {seq_length}")
    stats = stats if stats is not None else PackStats()
    stats.seq_length = seq_length
    current, used = [], 0
    for s in samples:
        stats.samples += 1
        n = len(s)
        if n > seq_length:
            stats.dropped_too_long += 1
            continue
        if used + n > seq_length:
            yield _emit(current, seq_length, pad_id, stats)
            current, used = [], 0
        current.append(s)
        used += n
        stats.packed += 1
    if current:
        yield _emit(current, seq_length, pad_id, stats)


def _emit(current, seq_length, pad_id, stats):
    row = _make_row(current, seq_length, pad_id)
    stats.rows += 1
    stats.tokens += int(row.segment_lengths.sum())
    stats.target_tokens += int((row.labels != IGNORE_INDEX).sum())
    return row


def position_ids(segment_lengths, seq_length):
    """int32 [T]: 0, 1, … restarting at each segment; padding positions are 0."""
    pos = np.zeros(seq_length, np.int32)
    start = 0
    for n in np.asarray(segment_lengths).tolist():
        pos[start:start + n] = np.arange(n, dtype=np.int32)
        start += n
    return pos


def attention_mask(segment_lengths, prefix_lengths, seq_length):
    """float32 [T,T] may-attend mask: block-diagonal causal, each segment's prefix block ORed in as bidirectional.

    Padding positions attend only to themselves.
    """
    mask = np.zeros((seq_length, seq_length), np.float32)
    start = 0
    prefix_lengths = np.asarray(prefix_lengths).tolist()
    for i, n in enumerate(np.asarray(segment_lengths).tolist()):
        end = start + n
        mask[start:end, start:end] = np.tril(np.ones((n, n), np.float32))
        p = prefix_lengths[i] if i < len(prefix_lengths) else 0
        if p:
            mask[start:start + p, start:start + p] = 1.0
        start = end
    idx = np.arange(start, seq_length)
    mask[idx, idx] = 1.0
    return mask


def expand_row(input_ids, labels, docstr_mask, segment_lengths, prefix_lengths):
    """Stored columns of one row → the five model columns (COLUMNS order)."""
    t = len(input_ids)
    if int(np.sum(segment_lengths)) > t:
        raise ValueError(f"segment lengths {list(segment_lengths)} exceed the row length {t}")
    return (np.asarray(input_ids, np.int32), np.asarray(labels, np.int32), position_ids(segment_lengths, t),
            attention_mask(segment_lengths, prefix_lengths, t), np.asarray(docstr_mask, np.int32))


def row_columns(row):
    """The five model columns (COLUMNS order) of a PackedRow: (input_ids, labels, position_ids, mask, docstr)."""
    return expand_row(row.input_ids, row.labels, row.docstr_mask, row.segment_lengths, row.prefix_lengths)
