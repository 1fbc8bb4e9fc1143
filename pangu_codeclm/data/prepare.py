"""`pangu-codeclm prepare`: records → tokenized objective samples → shuffled as the reference → greedy packed rows →
MindRecord shards + meta.json.

Tokenization runs in worker processes on chunks of records; the result does not depend on the number of workers.
The order of the samples before packing is the reference's (`sample_concatenation.main`, quirk D2): the records are
shuffled with `--seed` (42), tokenized, samples longer than `--seq-length` dropped, and the kept samples shuffled again
with the same seed; `datasets.Dataset.shuffle(seed)` is `np.random.default_rng(seed).permutation(n)`. Shuffling holds
the tokenized corpus in memory; `--no-shuffle` streams it in file order instead.
"""
import itertools
import logging
import os
import time

import numpy as np

from ..io_utils import file_sha256

logger = logging.getLogger(__name__)

CHUNK = 256
SHUFFLE_SEED = 42

_W = {}


def _init_worker(tokenizer_dir, objective, tok=None):
    from pangu_codeclm.data.objectives import SpecialIds
    from pangu_codeclm.tokenization.registry import load_tokenizer

    if tok is None:
        tok = load_tokenizer(tokenizer_dir)
    _W.update(tok=tok, ids=SpecialIds.from_tokenizer(tok), objective=objective)


def _encode_chunk(chunk):
    from pangu_codeclm.data.objectives import encode_pair

    return [encode_pair(_W["tok"], doc, code, _W["objective"], _W["ids"]) for doc, code in chunk]


def _chunks(records, size=CHUNK):
    it = ((r["docstring"], r["code"]) for r in records)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def iter_samples(records, tokenizer_dir, objective, workers=1, tokenizer=None):
    """Objective samples for `records`, in order, tokenized by `workers` processes (with one worker, by `tokenizer`
    when it is already loaded from `tokenizer_dir`)."""
    if workers <= 1:
        _init_worker(tokenizer_dir, objective, tokenizer)
        for chunk in _chunks(records):
            yield from _encode_chunk(chunk)
        return
    import multiprocessing as mp

    window = workers * 4  # bounded look-ahead: never queue the whole corpus
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(tokenizer_dir, objective)) as pool:
        chunks = _chunks(records)
        while True:
            batch = list(itertools.islice(chunks, window))
            if not batch:
                return
            for samples in pool.imap(_encode_chunk, batch):
                yield from samples


def reference_order(lengths, seq_length, seed=SHUFFLE_SEED):
    """Indices of the samples to pack, in the reference's order: permute all samples (`default_rng(seed)`), drop
    those longer than `seq_length`, permute the kept ones with the same seed."""
    lengths = np.asarray(lengths)
    first = np.random.default_rng(seed).permutation(len(lengths))
    kept = first[lengths[first] <= seq_length]
    return kept[np.random.default_rng(seed).permutation(len(kept))].tolist()


def ordered_samples(samples, seq_length, seed, stats):
    """`samples` in `reference_order`, counting the dropped ones in `stats` (a PackStats) as packing would."""
    samples = list(samples)
    order = reference_order([len(s) for s in samples], seq_length, seed)
    dropped = len(samples) - len(order)
    stats.samples += dropped
    stats.dropped_too_long += dropped
    return (samples[i] for i in order)


def corruption_meta(tok):
    """meta.json's `corruption` entry: what the training pipeline needs to corrupt each row (objectives.corrupt_row)."""
    from pangu_codeclm.data.objectives import CORRUPT_PROB, MASK_FRACTION
    return {"mask_id": tok.mask_id, "random_high": tok.vocab_size, "prob": CORRUPT_PROB, "mask_fraction": MASK_FRACTION}


def prepare(records_path, tokenizer_dir, objective, seq_length, out, num_shards=1, seed=SHUFFLE_SEED, shuffle=True,
            workers=1, skip_bad=False, overwrite=False, progress=True):
    """Run the whole step; return the meta dict written to `out/meta.json`."""
    from tqdm import tqdm

    from pangu_codeclm.data.mindrecord import write_dataset
    from pangu_codeclm.data.objectives import check_objective
    from pangu_codeclm.data.packing import PackStats, pack_samples
    from pangu_codeclm.data.records import iter_records
    from pangu_codeclm.tokenization.registry import load_tokenizer

    check_objective(objective)
    if seq_length < 4:
        raise ValueError(f"--seq-length must be at least 4 (<comments> <python> code <eot>), got {seq_length}")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:  # fail before the work, not after
        raise FileExistsError(f"{os.path.abspath(out)} exists and is not empty; pass --overwrite to replace it")
    start = time.perf_counter()
    tok = load_tokenizer(tokenizer_dir)  # fail early, in the main process, on a bad directory
    logger.info("tokenizer from %s: separation=%s, vocab_size=%d", tokenizer_dir, tok.separation, tok.vocab_size)
    sha = file_sha256(records_path)
    read_stats = {}
    bar = tqdm(desc="prepare", unit="pair", disable=not progress, mininterval=1.0)

    def counted(samples):
        for s in samples:
            bar.update(1)
            yield s

    records = iter_records(records_path, skip_bad=skip_bad, stats=read_stats)
    pack = PackStats()
    samples = counted(iter_samples(records, tokenizer_dir, objective, workers, tok))
    if shuffle:
        samples = ordered_samples(samples, seq_length, seed, pack)
    rows = pack_samples(samples, seq_length, tok.pad_id, pack)
    meta = {"objective": objective, "seq_length": seq_length, "shuffle_seed": seed if shuffle else None,
            "tokenizer": os.path.abspath(tokenizer_dir), "separation": tok.separation, "vocab_size": tok.vocab_size,
            "pad_token_id": tok.pad_id, "eos_token_id": tok.eot_id,
            "records": os.path.abspath(records_path), "records_sha256": sha}
    if objective == "corrupt_code":
        meta["corruption"] = corruption_meta(tok)
    try:
        meta = write_dataset(rows, out, seq_length, num_shards, meta=meta, overwrite=overwrite,
                             late_meta=lambda: dict(
                                 records_read=read_stats.get("read", 0), records_bad=read_stats.get("bad", 0),
                                 **pack.as_dict()))
    finally:
        bar.close()
    meta["seconds"] = round(time.perf_counter() - start, 2)
    return meta


def format_summary(meta):
    """Human-readable summary of a prepare run."""
    order = f"shuffled (seed {meta['shuffle_seed']})" if meta.get("shuffle_seed") is not None else "file order"
    return "\n".join([
        f"records: {meta['records_read']} read, {meta['records_bad']} bad (skipped) from {meta['records']}",
        f"samples: {meta['samples']} built, {meta['packed']} packed, {meta['dropped_too_long']} dropped "
        f"(longer than seq_length {meta['seq_length']}), {order}",
        f"rows: {meta['rows']} in {meta['num_shards']} shard(s); tokens {meta['tokens']} "
        f"(targets {meta['target_tokens']}, padding {meta['padding_tokens']})",
        f"objective {meta['objective']}, tokenizer {meta['tokenizer']} ({meta['separation']}), {meta['seconds']} s",
    ])
