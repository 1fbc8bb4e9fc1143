"""Host-memory estimate of generation (and so of `evaluate`) from a config, and the up-front refusal of a batch that
will not fit.

    estimate = fp32 weights + KV cache + working set
    weights   = 4 bytes x the parameters of the family's layout (embeddings by the vocabulary)
    KV cache  = batch x cached layers (blocks + top query layer) x 2 (K, V) x heads x cache length x head_dim x 4 bytes (fp32 caches)
    working   = RUNTIME_BYTES (interpreter, MindSpore, compiled graphs, tokenizer) + the c_attn column slices a CPU
                prefill holds (every block's [E,3E] copied once: model/layers.BLOCK_MIN_ROWS) + the prefill's K/V
                padded to the cache length (one prefill group's rows of cache: model/layers.KVCacheWrite.reset,
                infer/generate.prefill_group_rows) + per row: the prefill's activations and attention scores over
                the cache, and a few [V] logit rows + the decode writes' one-hot products (every cached layer's K and
                V [B*H, S, D] fp32 for S <= B distinct write slots, kept until the step's graph ends:
                model/layers.KVCacheWrite.add), counted at S = B (continuous batching's worst case): B^2 in the batch

The cache length is the longest a row may reach (prompt + generation, `max_length`), rounded up to the generator's
cache bucket, so the estimate is an upper bound for any prompt. The per-row terms bound what a generator holding only
its cache and one layer's working set needs (issue 10's target: weights + KV cache + 1.5 GB); the benchmark
(benchmarks/generate_300m.py) prints the estimate next to the measured peak RSS of each batch. Meant to refuse what
cannot fit, not to be byte-accurate.
"""
import math
import os

from ..families import family_for
from .generate import CACHE_BUCKET, prefill_group_rows

GB = 1e9
# python + MindSpore + compiled graphs + tokenizer: the peak RSS of a 300m generate at batch 1 (2.87 GB with V=64007,
# benchmarks/generate_300m.py) minus its weights (1.53 GB) and cache (0.05 GB) is 1.29 GB; 0.2 GB margin
RUNTIME_BYTES = 1.5e9
LOGIT_ROWS = 4             # [V] fp32 logit rows alive per batch row (logits, mask, softmax/argmax temporaries)
NO_CHECK_FLAG = "--no-memory-check"


def parameter_total(config):
    """Parameters of the network (embeddings, blocks, top query layer, final LayerNorm)."""
    return family_for(config).parameter_count(config)


def split_slices_bytes(config):
    """fp32 bytes of the q and k|v weight slices a CPU prefill copies from every block's c_attn and keeps alive until
    its graph ends (model/layers.BLOCK_MIN_ROWS; 0.30 GB at 300m, measured)."""
    return 4 * sum(p.size for p in family_for(config).layout(config)
                   if p.part == "block" and p.name.endswith(".attn.c_attn.weight"))


def cache_length(config, max_length):
    """Cache slots a row may need: `max_length` capped by the positions, rounded up to the cache bucket."""
    length = min(max_length, config.max_position_embeddings)
    return int(math.ceil(length / CACHE_BUCKET) * CACHE_BUCKET)


def estimate(config, batch_size, max_length):
    """{'weights', 'kv_cache', 'working', 'total', 'per_row', 'fixed'} in bytes for `batch_size` rows of up to
    `max_length` tokens (prompt + generation)."""
    h, heads = config.hidden_size, config.num_heads
    cache_len = cache_length(config, max_length)
    weights = 4 * parameter_total(config)
    kv_row = family_for(config).cached_layers(config) * 2 * heads * cache_len * config.head_dim * 4
    # prefill of one row: hidden states, qkv, FFN and the attention scores of one layer over the cache (fp32)
    prefill_row = 4 * cache_len * (6 * h + config.ffn_hidden_size + 2 * heads * cache_len)
    logits_row = 4 * LOGIT_ROWS * config.vocab_size
    per_row = kv_row + prefill_row + logits_row
    decode_writes = decode_write_bytes(config, batch_size)
    # a prefill group's K/V rows padded to the cache (counted whole: an upper bound for batches smaller than a group)
    runtime = RUNTIME_BYTES + split_slices_bytes(config) + prefill_group_rows(cache_len) * kv_row
    fixed = weights + runtime
    return {"weights": weights, "kv_cache": batch_size * kv_row, "working": runtime + decode_writes + batch_size *
            (prefill_row + logits_row), "total": fixed + batch_size * per_row + decode_writes, "per_row": per_row,
            "fixed": fixed, "decode_writes": decode_writes, "cache_length": cache_len, "batch_size": batch_size}


def decode_write_bytes(config, batch_size):
    """fp32 bytes of a decode step's one-hot write products at most: each cached layer's K and V [B*H, S, D] with S
    distinct write slots, counted at S = B (rows that advance together share a slot, so lockstep generation has
    S = 1), which the CPU graph keeps until it ends (0.21 GB at 300m, batch 32; 52 MB at batch 16)."""
    cached = family_for(config).cached_layers(config)
    return cached * 2 * batch_size ** 2 * config.num_heads * config.head_dim * 4


def largest_batch(config, max_length, available):
    """The largest batch whose estimate fits in `available` bytes (0 when not even one row does)."""
    e = estimate(config, 1, max_length)
    low, high = 0, max(0, int((available - e["fixed"]) // e["per_row"]))  # the bound without the B^2 term
    while low < high:  # the total grows with the batch: bisect for the last batch that fits
        middle = (low + high + 1) // 2
        if estimate(config, middle, max_length)["total"] <= available:
            low = middle
        else:
            high = middle - 1
    return low


def available_bytes(meminfo="/proc/meminfo", cgroup="/sys/fs/cgroup"):
    """Memory this process may still take: MemAvailable, lowered to the cgroup (v2) limit's headroom when there is
    one; None where neither can be read (not Linux)."""
    found = []
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(os.path.join(cgroup, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
        if limit != "max":
            with open(os.path.join(cgroup, "memory.current"), encoding="ascii") as f:
                found.append(int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(config, batch_size, max_length, available=None, what="generation"):
    """None when the estimate fits in `available` bytes (default: `available_bytes()`; None: unknown, no check),
    else the message to refuse with: the figure, the machine's, and the batch that fits."""
    available = available_bytes() if available is None else available
    if available is None:
        return None
    e = estimate(config, batch_size, max_length)
    if e["total"] <= available:
        return None
    fits = largest_batch(config, max_length, available)
    parts = (f"weights {e['weights'] / GB:.1f} GB + KV cache {e['kv_cache'] / GB:.1f} GB (cache length "
             f"{e['cache_length']}) + working set {e['working'] / GB:.1f} GB")
    advice = (f"lower --batch-size to {fits}" if fits >= 1 else
              "not even batch 1 fits: lower --max-length or free memory")
    return (f"{what}: batch {batch_size} needs ~{e['total'] / GB:.1f} GB ({parts}), this machine has "
            f"{available / GB:.1f} GB available (MemAvailable); {advice}, or pass {NO_CHECK_FLAG} to try anyway")
