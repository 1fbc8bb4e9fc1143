"""Incremental decoding for PanguCodeCLMForCausalLM: a prefill graph and a one-token decode graph with a KV cache.

Prompts are prefilled into their own cache rows, a few per call (at most `PREFILL_GROUP_ROWS`, and
`PREFILL_GROUP_SLOTS` cache slots in all, left-padded to the widest). On CPU the prefill graph takes any batch and
prompt length (dynamic shape): one graph, compiled once, whose working set is that of the prompts at hand (one static
graph per length kept its buffers for the life of the process: benchmarks/prefill_graphs_300m.py). On other devices
each prompt is re-packed right-aligned (left padding) into a bucketed length, one prompt per call, and a graph
compiles per bucket.
The cache length is bucketed, so each decode graph compiles once per (batch, window, distinct write slots) shape
(on CPU with the fused kernels of model/cpu_kernels the window is the whole cache); masked slots never change a
result. Decode steps advance every row at its own cache slot and position, so a row
that finishes can take the next prompt (`generate_many`, continuous batching); `generate` keeps its batch in
lockstep. The cache holds one K/V pair per cached layer (the network's `num_cached_layers`). Greedy steps take
the argmax on the device (ids only come back); sampling (temperature, top-k, top-p) runs in numpy on the fp32 logits
with `np.random.default_rng(seed)`. Separated models generate only code-side ids. Prefix Code CLM: the prefill takes
a per-row prefix index (the reference's form, moved into the re-packed layout so that it covers the same real
tokens); decode steps attend the cache causally. Each row stops at its own max position.
"""
import logging
import weakref

import numpy as np

LOG = logging.getLogger(__name__)
_DECODERS = weakref.WeakKeyDictionary()
# A prefill call takes up to PREFILL_GROUP_ROWS prompts, as many as PREFILL_GROUP_SLOTS cache slots allow (rows x
# cache length: the graph keeps each row's K/V padded to the cache length and its activations until it ends). A
# matmul over a few hundred rows runs at ~1.5x the GFLOP/s of one 150-token prompt's on an AVX2 CPU
# (benchmarks/matmul_shapes.py) and the call's fixed costs are shared. 300m, batch 8, 150-token prompts, cache 256
# (`generate_300m.py`'s ours-gen child, one run each): 1 row per call 76 tokens/s, 3.56 GB; 3 rows 96 tokens/s,
# 3.85 GB; 4 rows 113 tokens/s, 3.99 GB; 6 rows 101 tokens/s, 4.26 GB. infer/memory.py counts the group.
PREFILL_GROUP_ROWS = 8
PREFILL_GROUP_SLOTS = 768
CACHE_BUCKET = 128  # the default granularity of the cache length (and of the decode windows)


def prefill_group_rows(cache_len):
    """The most prompts one prefill call takes into caches of `cache_len` slots (at least 1)."""
    return max(1, min(PREFILL_GROUP_ROWS, PREFILL_GROUP_SLOTS // int(cache_len)))


def round_up(n, multiple):
    return -(-int(n) // int(multiple)) * int(multiple)


def left_pad_positions(mask):
    """Position ids of a left-padded batch: cumsum(mask) - 1 on real tokens, 1 on padding (DESIGN.md)."""
    mask = np.asarray(mask)
    pos = np.cumsum(mask, axis=-1) - 1
    return np.where(mask > 0, pos, 1).astype(np.int32)


PREFIX_LM_SETTINGS = ("auto", "on", "off")


def prefix_lm_enabled(setting, config):
    """Whether queries get the bidirectional `<comments> … <python>` prefix: `on`/`off`, or `auto` = the model was
    trained with Prefix Code CLM (`config.objective == "prefix_code"`; a config without one counts as causal)."""
    if setting not in PREFIX_LM_SETTINGS:
        raise ValueError(f"prefix_lm: expected one of {', '.join(PREFIX_LM_SETTINGS)}, got {setting!r}")
    if setting == "auto":
        return getattr(config, "objective", None) == "prefix_code"
    return setting == "on"


def prefix_lm_matrix(prefix_index, length):
    """float32 [B,T,T] may-attend matrix of the reference's prefix index form: [b, i, j] = 1 where j <= index[b]
    (every query sees those keys; ORed into the causal mask); an index of -1 gives zeros (the row stays causal)."""
    index = np.asarray(prefix_index, dtype=np.int64).reshape(-1)
    visible = np.arange(length)[None, :] <= index[:, None]
    return np.broadcast_to(visible[:, None, :], (index.size, length, length)).astype(np.float32)


def _prefix_counts(prefix_index, mask):
    """Real tokens each row's prefix covers: those at positions <= prefix_index[b] of the row as given."""
    index = np.asarray(prefix_index, dtype=np.int64).reshape(-1)
    if index.shape != (mask.shape[0],):
        raise ValueError(f"prefix_index: expected one index per row ({mask.shape[0]}), got shape "
                         f"{np.shape(prefix_index)}")
    covered = np.arange(mask.shape[1])[None, :] <= index[:, None]
    return ((mask > 0) & covered).sum(-1)


def _prefix_in_layout(counts, mask):
    """The prefix index, in a right-aligned (left-padded) layout `mask`, that covers `counts` real tokens per row."""
    first_real = mask.shape[1] - (mask > 0).sum(-1)
    return np.where(counts > 0, first_real + counts - 1, -1).astype(np.int32)


def select_tokens(logits, rng=None, do_sample=False, temperature=1.0, top_k=0, top_p=1.0, allowed=None):
    """Next ids [B] from fp32 logits [B,V]: greedy argmax or a sample after temperature, top-k and top-p filtering."""
    z = np.asarray(logits, dtype=np.float64).copy()
    if allowed is not None:
        z[:, ~allowed] = -np.inf
    if not do_sample:
        return z.argmax(-1)
    z = z / temperature
    if 0 < top_k < z.shape[-1]:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, -1)
        before = np.cumsum(sorted_probs, -1) - sorted_probs  # mass of the strictly more likely tokens
        drop_sorted = before >= top_p                        # keep the smallest set reaching top_p (>= 1 token)
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, -1)
        probs = np.where(drop, 0.0, probs)
        probs /= probs.sum(-1, keepdims=True)
    rng = rng if rng is not None else np.random.default_rng()
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((np.cumsum(probs, -1) < u).sum(-1), probs.shape[-1] - 1)


class IncrementalDecoder:
    """Prefill/decode graphs of one network over one set of in-place KV caches (`num_cached_layers` pairs of fp32
    Parameters [B*H, L, D]: no cache copies per token; see model/layers.KVCacheWrite).

    Prompts are prefilled into their cache rows a group at a time (the memory of a prefill is that of its group,
    bounded by `PREFILL_GROUP_ROWS` and `PREFILL_GROUP_SLOTS`); a decode step
    advances every row by one token at the row's own cache slot, so rows may start at different times (continuous
    batching). Greedy decode steps take the argmax on the device and return only ids. Use `decoder_for(network)`; only
    the caches of one (batch, cache length) shape are kept (a request that fits them reuses them). On CPUs with
    AVX-512 or AVX2 its graphs run with the projection weights in strip order (model/cpu_kernels.StripMatMul), put in
    place before each call; the network's own calls put the checkpoint order back.
    """

    def __init__(self, network):
        import mindspore as ms
        self.ms = ms
        self.network = network
        self._shape = None
        self._cells = None
        # the fused CPU attention (model/cpu_kernels) reads only the slots a row attends, in place: every step can
        # attend the whole cache (one decode graph per batch and cache length)
        self.attends_in_place = any(getattr(cell, "fused_attend", None) is not None
                                    for _, cell in network.cells_and_names())
        self.strips = None  # whether the graphs run with the weights in strip order (decided at the first call)
        self.set_dynamic_prefill()

    def _hold_layout(self):
        """Put the network's weights in the order this decoder's graphs compiled with: strip order on CPU where the
        strip kernel builds (model/cpu_kernels; the network's own calls put the [in, out] order back)."""
        if self.strips is None:  # (off the CPU there are no fused kernels: the network declines)
            self.strips = self.network.set_strip_layout(True)
        elif self.strips and not self.network.strip_layout:
            self.network.set_strip_layout(True)

    def set_dynamic_prefill(self, dynamic=None):
        """One prefill graph for every prompt length (True) or one per prompt bucket (False); None: the device's
        default (True on CPU only). Drops the current graphs and caches."""
        if dynamic is None:
            dynamic = self.ms.get_context("device_target") == "CPU"
        self.dynamic_prefill = bool(dynamic)
        self._shape = self._cells = None

    def prompt_width(self, length, bucket):
        """The prefill length of a prompt of `length` ids: itself (dynamic prefill), else rounded up to `bucket`
        (capped by the positions)."""
        if self.dynamic_prefill:
            return int(length)
        return min(round_up(length, bucket), self.network.max_positions)

    @property
    def prefill_graphs(self):
        """How many prefill graphs the current cells have compiled (each keeps its buffers while it lives)."""
        return 0 if self._cells is None else len(getattr(self._cells["prefill"], "compile_cache", ()))

    def _cells_for(self, batch, cache_len):
        if self._shape is None or self._shape[0] != batch or self._shape[1] < cache_len:
            self._cells = None  # drop the old caches before allocating new ones
            self._cells = _make_cells(self.network, batch, cache_len, self.dynamic_prefill)
            self._shape = (batch, cache_len)
        return self._cells

    def reserve(self, batch, cache_len):
        """Caches for `batch` rows of at least `cache_len` slots; returns the cache length in use."""
        self._cells_for(batch, cache_len)
        return self._shape[1]

    def prefill_group_rows(self, cache_len):
        """The most prompts one prefill call takes into caches of `cache_len` slots (the module's
        `prefill_group_rows`); 1 without the dynamic prefill graph (a static graph per batch size and bucket would
        multiply the graphs)."""
        return prefill_group_rows(cache_len) if self.dynamic_prefill else 1

    def prefill(self, ids, positions, mask, cache_len, prefix_index=None, rows=None):
        """Run the prompt(s) [b,P] (sets cache slots 0..P-1 of cache rows `rows` [b], default 0..b-1, zeros after
        them); returns last-position logits, numpy [b,V]. `prefix_index` [b] (the reference's index form, -1 or None:
        causal) opens the prefix keys to every query. `cache_len`: the cache length to reserve when `rows` is None
        (else the caches must already be `reserve`d)."""
        t, ms = self.ms.Tensor, self.ms
        batch, seq = ids.shape
        if rows is None:
            self.reserve(batch, cache_len)
            rows = np.arange(batch)
        index = _cache_rows(rows, self.network.config.num_heads)
        prefix = np.full(batch, -1, np.int32) if prefix_index is None else np.asarray(prefix_index, np.int32)
        cells = self._cells
        self._hold_layout()
        return cells["prefill"](t(ids, ms.int32), t(positions, ms.int32), t(mask, ms.float32), t(prefix, ms.int32),
                                t(index)).asnumpy()

    def decode(self, ids, positions, valid, slot, vocab_bias=None, writes=None):
        """One token per row [B,1] written at cache slot `slot` (an int, or one per row [B]); it attends the first W
        slots, those marked in `valid` [B,W] (W <= the cache length, one graph per W; itself included). `writes` bool
        [B] (default all): the rows whose token is written (a slot is written once: see model/layers.KVCacheWrite).
        Returns logits, numpy [B,V], or with `vocab_bias` (fp32 [V]: 0 allowed, -inf not) the greedy ids [B] of
        logits + vocab_bias, chosen on the device."""
        t, ms = self.ms.Tensor, self.ms
        batch = valid.shape[0]
        self.reserve(batch, valid.shape[1])
        slots = np.broadcast_to(np.asarray(slot, dtype=np.int32).reshape(-1), (batch,))
        writes = np.ones(batch, bool) if writes is None else np.asarray(writes, bool)
        distinct, onehot = _write_plan(slots, writes, self.network.config.num_heads)
        args = (t(ids, ms.int32), t(positions, ms.int32), t(valid, ms.float32), t(distinct), t(onehot))
        self._hold_layout()
        if vocab_bias is None:
            return self._cells["decode"](*args).asnumpy()
        return self._cells["greedy"](*args, t(vocab_bias, ms.float32)).asnumpy().astype(np.int64)

    def full_logits(self, ids, positions, mask, prefix_index=None):
        """Last-position logits [B,V] by recomputing the whole (left-padded) sequence (prefix as in `prefill`)."""
        t, ms = self.ms.Tensor, self.ms
        prefix = None if prefix_index is None else t(prefix_lm_matrix(prefix_index, ids.shape[1]), ms.float32)
        logits = self.network(t(ids, ms.int32), position_ids=t(positions, ms.int32),
                              attention_mask=t(mask, ms.float32), prefix_lm_mask=prefix)
        return logits[:, -1].asnumpy()


def _cache_rows(rows, heads):
    """The cache rows int32 [b*H] (row*H + h) of batch rows `rows`, in the order of new K/V [b,H,..] flattened."""
    return (np.asarray(rows)[:, None] * heads + np.arange(heads)[None, :]).reshape(-1).astype(np.int32)


def _write_plan(slots, writes, heads):
    """(the distinct slots int32 [S], one-hot f32 [B*H, S, 1]) of a decode step's cache writes: 1 at (b*H + h, j)
    where batch row b writes (`writes` bool [B]) at slot j (`slots` [B]). S is the count of distinct slots rounded
    up to a power of two (at most B; one graph per S), padded with the first slot and zero columns (adding zeros).
    Rows that advance together share a slot, so the write costs B*H*S*D, not B*H*B*D."""
    batch = slots.shape[0]
    distinct, column = np.unique(slots, return_inverse=True)
    width = min(batch, 1 << int(len(distinct) - 1).bit_length())
    padded = np.concatenate([distinct, np.full(width - len(distinct), distinct[0])]).astype(np.int32)
    onehot = np.zeros((batch * heads, width, 1), np.float32)
    onehot[np.arange(batch * heads), np.repeat(column.reshape(-1), heads), 0] = np.repeat(writes, heads)
    return padded, onehot


def _make_cells(network, batch, cache_len, dynamic_prefill):
    """{prefill, decode, greedy} cells sharing fresh cache Parameters [B*H, L, D] (written in place and read as they
    are: model/layers.KVCacheWrite). `dynamic_prefill`: the prefill of one row takes prompts of any length."""
    from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
    import mindspore as ms
    cfg = network.config
    shape = (batch * cfg.num_heads, cache_len, cfg.hidden_size // cfg.num_heads)
    tag = f"kv_cache_{id(network)}_{batch}x{cache_len}"

    def caches(kind):
        return ParameterTuple(Parameter(Tensor(np.zeros(shape, np.float32)), name=f"{tag}.{kind}.{i}",
                                        requires_grad=False) for i in range(network.num_cached_layers))

    k_caches, v_caches = caches("k"), caches("v")

    class WithCaches(nn.Cell):
        """The network plus this generator's KV caches (one compiled graph per subclass and shape)."""

        def __init__(self, net):
            super().__init__(auto_prefix=False)
            self.net = net
            self.k_caches = k_caches
            self.v_caches = v_caches

    class Prefill(WithCaches):
        def construct(self, input_ids, position_ids, attention_mask, prefix_index, cache_index):
            return self.net.prefill(input_ids, position_ids, attention_mask, prefix_index, self.k_caches,
                                    self.v_caches, cache_index)

    class Decode(WithCaches):
        def construct(self, input_ids, position_ids, valid, write_slots, write_onehot):
            return self.net.decode(input_ids, position_ids, valid, write_slots, write_onehot, self.k_caches,
                                   self.v_caches)

    class GreedyDecode(WithCaches):
        """Decode + argmax of logits + vocab_bias on the device: only [B] int32 ids go back to the host."""

        def __init__(self, net):
            super().__init__(net)
            self.argmax = ops.Argmax(axis=-1, output_type=ms.int32)

        def construct(self, input_ids, position_ids, valid, write_slots, write_onehot, vocab_bias):
            logits = self.net.decode(input_ids, position_ids, valid, write_slots, write_onehot, self.k_caches,
                                     self.v_caches)
            return self.argmax(logits + vocab_bias)

    cells = {"prefill": Prefill(network), "decode": Decode(network), "greedy": GreedyDecode(network)}
    for cell in cells.values():
        cell.set_train(False)
    if dynamic_prefill:
        ids = Tensor(shape=[None, None], dtype=ms.int32)
        cells["prefill"].set_inputs(ids, ids, Tensor(shape=[None, None], dtype=ms.float32),
                                    Tensor(shape=[None], dtype=ms.int32), Tensor(shape=[None], dtype=ms.int32))
    return cells


def decoder_for(network):
    """The network's IncrementalDecoder, created once so each graph compiles once per shape."""
    decoder = _DECODERS.get(network)
    if decoder is None:
        decoder = IncrementalDecoder(network)
        _DECODERS[network] = decoder
    return decoder


def _check_args(ids, mask, max_new_tokens, do_sample, temperature, top_p, top_k):
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"input_ids: expected a non-empty [batch, length] array, got shape {ids.shape}")
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask: expected shape {ids.shape} like input_ids, got {mask.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("attention_mask: expected only 0/1 values")
    empty = np.flatnonzero(mask.sum(-1) == 0)
    if empty.size:
        raise ValueError(f"attention_mask: row {int(empty[0])} has no real token")
    if int(max_new_tokens) < 0:
        raise ValueError(f"max_new_tokens: expected >= 0, got {max_new_tokens}")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature: expected > 0 when sampling, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a value in (0, 1], got {top_p}")
    if int(top_k) < 0:
        raise ValueError(f"top_k: expected >= 0, got {top_k}")


def _right_align(ids, mask, length, pad_id):
    """Re-pack each row's real tokens right-aligned into [B, length] (left padding); returns (ids, mask)."""
    return _right_align_rows([ids[b][mask[b] > 0] for b in range(ids.shape[0])], length, pad_id)


def _right_align_rows(rows, length, pad_id=0):
    """Prompts (id arrays, no padding) right-aligned into [n, length] (left padding with `pad_id`); returns (ids,
    mask)."""
    ids = np.full((len(rows), length), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), length), dtype=np.float32)
    for b, row in enumerate(rows):
        ids[b, length - row.size:] = row
        mask[b, length - row.size:] = 1.0
    return ids, mask


def _admission_groups(free, queue, widths, budgets, cache_len, max_rows):
    """Pop prompts off the end of `queue` for the cache rows `free`, in groups of one prefill call: [(rows, prompts)].

    A group takes the next prompts while it has at most `max_rows` prompts and every member still fits its cache row
    at the widest one's width (width + budget <= `cache_len`: the rows start decoding at the group's width)."""
    groups, free = [], list(free)
    while free and queue:
        group = [queue.pop()]
        width, budget = widths[group[0]], int(budgets[group[0]])
        while len(group) < min(max_rows, len(free)) and queue:
            r = queue[-1]
            wider, longer = max(width, widths[r]), max(budget, int(budgets[r]))
            if wider + longer > cache_len:
                break
            group.append(queue.pop())
            width, budget = wider, longer
        groups.append((np.asarray(free[:len(group)], np.int64), np.asarray(group, np.int64)))
        free = free[len(group):]
    return groups


def generate(network, input_ids, attention_mask=None, max_new_tokens=64, do_sample=False, temperature=1.0, top_p=1.0,
             top_k=0, eos_token_id=None, pad_token_id=None, seed=None, allowed_vocab_mask=None, use_cache=True,
             prompt_bucket=64, cache_bucket=CACHE_BUCKET, return_scores=False, progress=False, prefix_index=None):
    """Continue each prompt row; returns int numpy [B, T + n] (the prompt as given + n generated ids).

    `attention_mask` [B,T] marks real prompt tokens (padding anywhere is allowed; left padding is usual). A row that
    produced `eos_token_id`, or whose prompt plus continuation reached the model's max positions, gets `pad_token_id`
    afterwards; generation stops when every row is done or after `max_new_tokens`. Separated models (and
    `allowed_vocab_mask`, bool [V]) restrict the ids that may be produced. `prefix_index` [B] (Prefix Code CLM, the
    reference's index form in `input_ids`' coordinates; -1: none): the prompt keys at positions <= it are visible to
    every prompt query in prefill; decode steps are causal over the cache. `use_cache=False` recomputes the whole
    sequence per token (the baseline). With `return_scores`, also returns the per-step fp32 logits [n][B,V].
    `prompt_bucket`: the prefill length granularity where the prefill graph is static (not on CPU: see the module
    docstring) and of the no-cache baseline; `cache_bucket`: that of the cache and of the decode windows.
    """
    ids = np.asarray(input_ids)
    if ids.ndim == 1:
        ids = ids[None]
    mask = np.ones(ids.shape, np.int64) if attention_mask is None else np.asarray(attention_mask)
    if mask.ndim == 1:
        mask = mask[None]
    _check_args(ids, mask, max_new_tokens, do_sample, temperature, top_p, top_k)
    ids = ids.astype(np.int64)
    vocab = network.vocab_size
    real = ids[mask > 0]
    if real.min() < 0 or real.max() >= vocab:
        raise ValueError(f"input_ids: ids must lie in [0, {vocab}), got [{real.min()}, {real.max()}]")
    pad_id = network.config.pad_token_id if pad_token_id is None else int(pad_token_id)
    allowed = _allowed_ids(network, allowed_vocab_mask)
    prefix_counts = None if prefix_index is None else _prefix_counts(prefix_index, mask)

    max_pos = network.max_positions
    lengths = (mask > 0).sum(-1)
    longest = int(lengths.max())
    if longest >= max_pos:
        raise ValueError(f"input_ids: a prompt has {longest} tokens; the model allows at most {max_pos - 1} "
                         f"before generating")
    steps = min(int(max_new_tokens), int((max_pos - lengths).max()))
    chooser = _Chooser(allowed, np.random.default_rng(seed), do_sample, temperature, top_k, top_p, return_scores)
    scores = [] if return_scores else None
    was_training = network.training
    network.set_train(False)
    bar = _progress_bar(progress, steps)
    try:
        if not use_cache:
            generated = _generate_recomputing(decoder_for(network), ids, mask, steps, chooser, eos_token_id, pad_id,
                                              prompt_bucket, prefix_counts, scores, bar)
        else:
            rows = [ids[b][mask[b] > 0] for b in range(ids.shape[0])]
            outputs = _serve(decoder_for(network), rows, np.full(len(rows), steps), len(rows), chooser, eos_token_id,
                             prefix_counts, prompt_bucket, cache_bucket, lockstep=True, scores=scores, bar=bar)
            generated = np.full((len(rows), max(map(len, outputs))), pad_id, dtype=np.int64)
            for b, row in enumerate(outputs):
                generated[b, :len(row)] = row
    finally:
        if bar is not None:
            bar.close()
        network.set_train(was_training)
    out = np.concatenate([ids, generated], axis=1)
    return (out, scores) if return_scores else out


def generate_many(network, prompts, max_new_tokens=64, batch_size=16, do_sample=False, temperature=1.0, top_p=1.0,
                  top_k=0, eos_token_id=None, seed=None, allowed_vocab_mask=None, prompt_bucket=64,
                  cache_bucket=CACHE_BUCKET, prefix_index=None, progress=False, on_finish=None):
    """Continuous batching: generated ids (lists, up to and including `eos_token_id`) for every prompt of `prompts`
    (id sequences, no padding), in their order, with at most `batch_size` rows decoding at a time; a row that
    finishes frees its slot for the next prompt (the longest prompt + budget is admitted first). `max_new_tokens`:
    one budget, or one per prompt (each also stops at the model's max positions). `prefix_index`: one per prompt in
    its own coordinates (-1: none). Greedy ids equal one-prompt-at-a-time `generate`; sampling is seeded but depends
    on the schedule (batch_size). `on_finish(i, ids)` is called as soon as prompt i is done (e.g. to write its
    record)."""
    rows = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    if not rows:
        return []
    budgets = np.broadcast_to(np.asarray(max_new_tokens, dtype=np.int64), (len(rows),)).copy()
    vocab, max_pos = network.vocab_size, network.max_positions
    for i, row in enumerate(rows):
        if row.size == 0 or row.size >= max_pos:
            raise ValueError(f"prompts[{i}]: expected 1..{max_pos - 1} ids, got {row.size}")
        if row.min() < 0 or row.max() >= vocab:
            raise ValueError(f"prompts[{i}]: ids must lie in [0, {vocab}), got [{row.min()}, {row.max()}]")
    _check_args(rows[0][None], np.ones((1, rows[0].size)), int(budgets.min()), do_sample, temperature, top_p, top_k)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    counts = None
    if prefix_index is not None:
        index = np.asarray(prefix_index, dtype=np.int64).reshape(-1)
        if index.shape != (len(rows),):
            raise ValueError(f"prefix_index: expected one index per prompt ({len(rows)}), got shape "
                             f"{np.shape(prefix_index)}")
        counts = np.array([int(np.clip(i + 1, 0, r.size)) for i, r in zip(index, rows)])
    chooser = _Chooser(_allowed_ids(network, allowed_vocab_mask), np.random.default_rng(seed), do_sample,
                       temperature, top_k, top_p, False)
    was_training = network.training
    network.set_train(False)
    bar = _progress_bar(progress, len(rows))
    try:
        return _serve(decoder_for(network), rows, budgets, min(int(batch_size), len(rows)), chooser, eos_token_id,
                      counts, prompt_bucket, cache_bucket, bar=bar, on_finish=on_finish)
    finally:
        if bar is not None:
            bar.close()
        network.set_train(was_training)


def _allowed_ids(network, allowed_vocab_mask):
    """bool [V] of the ids generation may produce (a separated model's code side, & `allowed_vocab_mask`), or None."""
    vocab = network.vocab_size
    allowed = network.code_vocabulary() > 0 if network.separation_map else None
    if allowed_vocab_mask is not None:
        extra = np.asarray(allowed_vocab_mask).astype(bool)
        if extra.shape != (vocab,):
            raise ValueError(f"allowed_vocab_mask: expected shape ({vocab},), got {extra.shape}")
        allowed = extra if allowed is None else allowed & extra
    if allowed is not None and not allowed.any():
        raise ValueError("allowed_vocab_mask: no vocabulary id is left for generation (a separated model also keeps "
                         "only its code-side ids)")
    return allowed


def _progress_bar(progress, total):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="generate", unit="tok")


class _Chooser:
    """Next ids from logits on the host (`select_tokens`), or, for greedy decoding without scores, the fp32 vocabulary
    bias (0 allowed, -inf not) with which decode steps take the argmax on the device."""

    def __init__(self, allowed, rng, do_sample, temperature, top_k, top_p, keep_logits):
        self.allowed, self.rng = allowed, rng
        self.settings = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
        self.vocab_bias = None
        if not do_sample and not keep_logits:
            self.vocab_bias = np.zeros(allowed.size if allowed is not None else 0, np.float32)
            if allowed is not None:
                self.vocab_bias[~allowed] = -np.inf

    def bias(self, vocab):
        """The device argmax bias [V], or None when logits must come back to the host."""
        if self.vocab_bias is None:
            return None
        return self.vocab_bias if self.vocab_bias.size else np.zeros(vocab, np.float32)

    def __call__(self, logits):
        return select_tokens(logits, self.rng, allowed=self.allowed, **self.settings)


def decode_window(used, cache_bucket, cache_len):
    """The slots a decode step attends where the attention does not read the cache in place
    (`IncrementalDecoder.attends_in_place`): the `used` ones rounded up to the bucket, or the whole cache once that
    is more than half of it (the whole cache is read in place; a smaller window is copied first, model/layers.py).
    The half is a rule of thumb, not a measured crossover."""
    window = min(round_up(used, cache_bucket), cache_len)
    return cache_len if 2 * window > cache_len else window


def _serve(decoder, rows, budgets, slots, chooser, eos_token_id, prefix_counts, prompt_bucket, cache_bucket,
           lockstep=False, scores=None, bar=None, on_finish=None):
    """The generated ids of every prompt of `rows`, `slots` cache rows at a time.

    The free cache rows take the next prompts, the longest (prompt + budget) first unless `lockstep`, so that the rows
    decoding together have similar lengths and attend a small window; the prompts admitted together are prefilled a
    group per call (`_admission_groups`), right-aligned into the group's widest prompt bucket. Every decode step then
    advances all rows by one token at their own cache slot and position. A row stops at `eos_token_id`, its budget or
    the model's max positions; its slot then takes the next prompt.
    `lockstep` (rows == slots, as `generate`): finished rows keep decoding their own choices so that every step
    chooses over the whole batch (one draw of the sampler per step, as before continuous batching); `scores` collects
    those per-step logits [B,V]. `on_finish(r, ids)` is called when prompt r is done."""
    network = decoder.network
    max_pos = network.max_positions
    budgets = np.minimum(budgets, [max_pos - r.size for r in rows])
    widths = [decoder.prompt_width(r.size, prompt_bucket) for r in rows]
    need = max(widths) + int(budgets.max()) if lockstep else max(w + int(b) for w, b in zip(widths, budgets))
    cache_len = decoder.reserve(slots, round_up(need, cache_bucket))  # finished lockstep rows keep writing
    vocab_bias = chooser.bias(network.vocab_size)
    outputs = [[] for _ in rows]
    queue = [r for r in range(len(rows)) if budgets[r] > 0]
    if not lockstep:
        queue.sort(key=lambda r: -(widths[r] + int(budgets[r])))
    if on_finish is not None:
        for r in range(len(rows)):
            if budgets[r] <= 0:
                on_finish(r, outputs[r])
    queue.reverse()
    owner = np.full(slots, -1)                # the prompt each cache row serves (-1: none)
    write = np.zeros(slots, np.int64)         # its next cache slot
    position = np.zeros(slots, np.int64)      # the position of its last token
    valid = np.zeros((slots, cache_len), np.float32)
    pending = np.zeros(slots, np.int64)       # the id each row emits next

    def admit(free):
        """Prefill the next prompts of the queue into the cache rows `free`; returns (rows used, logits [n,V])."""
        used, logits = [], []
        for group_slots, group in _admission_groups(free, queue, widths, budgets, cache_len,
                                                    decoder.prefill_group_rows(cache_len)):
            width = max(widths[r] for r in group)
            prompt, prompt_mask = _right_align_rows([rows[r] for r in group], width)
            prefix = None if prefix_counts is None else _prefix_in_layout(prefix_counts[group], prompt_mask)
            logits.append(decoder.prefill(prompt, left_pad_positions(prompt_mask), prompt_mask, cache_len, prefix,
                                          rows=group_slots))
            owner[group_slots], write[group_slots] = group, width
            position[group_slots] = [rows[r].size - 1 for r in group]
            valid[group_slots] = 0.0
            valid[group_slots, :width] = prompt_mask
            used.extend(group_slots)
        return np.asarray(used, np.int64), (np.concatenate(logits) if logits else None)

    if lockstep:
        first_slots, first = admit(np.arange(len(queue)))
        if first is None:
            return outputs
        if scores is not None:
            scores.append(first.copy())
        pending[first_slots] = chooser(first)
    active = owner >= 0
    while True:
        finished = []
        for slot in np.flatnonzero(active):
            r = owner[slot]
            outputs[r].append(int(pending[slot]))
            if len(outputs[r]) >= budgets[r] or (eos_token_id is not None and pending[slot] == eos_token_id):
                active[slot] = False
                finished.append(slot)
                if on_finish is not None:
                    on_finish(int(r), outputs[r])
        if lockstep and bar is not None:
            bar.update(1)
        fresh = np.zeros(slots, bool)
        if not lockstep:
            free = sorted(list(np.flatnonzero(owner < 0)) + finished)
            if bar is not None:
                bar.update(len(finished))
            owner[free] = -1
            admitted, logits = admit(np.asarray(free, np.int64))
            if logits is not None:
                pending[admitted] = chooser(logits)
                active[admitted] = fresh[admitted] = True
        if not active.any():
            return outputs
        stepping = (owner >= 0) & ~fresh
        valid[stepping, write[stepping]] = 1.0
        position[stepping] = np.minimum(position[stepping] + 1, max_pos - 1)  # rows at their limit are done
        # finished rows (lockstep) keep decoding their own choice (pad ids may lie outside a small vocabulary)
        window = cache_len if decoder.attends_in_place else decode_window(int(write[owner >= 0].max()) + 1,
                                                                           cache_bucket, cache_len)
        result = decoder.decode(pending[:, None], position[:, None], valid[:, :window], write, vocab_bias,
                                writes=stepping)
        write[stepping] += 1
        if vocab_bias is None:
            if scores is not None:
                scores.append(result.copy())
            result = chooser(result)
        pending[stepping] = result[stepping]


def _generate_recomputing(decoder, ids, mask, steps, chooser, eos_token_id, pad_id, prompt_bucket, prefix_counts,
                          scores, bar):
    """Baseline without a cache: every step recomputes the whole (re-packed) sequence; returns ids [B, n]."""
    batch = ids.shape[0]
    room = decoder.network.max_positions - (mask > 0).sum(-1)
    prompt_len = min(round_up(int((mask > 0).sum(-1).max()), prompt_bucket), decoder.network.max_positions)
    prompt, prompt_mask = _right_align(ids, mask, prompt_len, 0)
    generated = np.full((batch, steps), pad_id, dtype=np.int64)
    fed = np.zeros((batch, steps), dtype=np.int64)  # what the model reads back (finished rows: their own choice)
    done = np.zeros(batch, dtype=bool)
    for i in range(steps):
        logits = _recompute_last(decoder, prompt, prompt_mask, fed[:, :i], prompt_bucket, prefix_counts)
        if scores is not None:
            scores.append(logits.copy())
        chosen = chooser(logits)
        token = np.where(done, pad_id, chosen)
        generated[:, i] = token
        fed[:, i] = chosen
        if eos_token_id is not None:
            done |= token == eos_token_id
        done |= i + 1 >= room
        if bar is not None:
            bar.update(1)
        if done.all():
            return generated[:, :i + 1]
    return generated


def _recompute_last(decoder, prompt, prompt_mask, generated, bucket, prefix_counts=None):
    """Baseline: last-position logits of prompt + generated, recomputed in full (left-padded to a bucket)."""
    seq = np.concatenate([prompt, generated.astype(np.int32)], axis=1)
    seq_mask = np.concatenate([prompt_mask, np.ones(generated.shape, np.float32)], axis=1)
    seq_mask = seq_mask * (np.cumsum(seq_mask, -1) <= decoder.network.max_positions)  # rows past their limit
    length = min(round_up(seq.shape[1], bucket), decoder.network.max_positions)  # >= every row's real tokens
    ids, mask = _right_align(seq, seq_mask, length, 0)
    prefix = None if prefix_counts is None else _prefix_in_layout(prefix_counts, mask)
    return decoder.full_logits(ids, left_pad_positions(mask), mask, prefix)


def completion_source(tokenizer, signature, generated):
    """Python source of the signature + the generated ids, cut at the first `<eot>` / `<pad>`."""
    from ..codefmt import markers_to_source
    from ..sample_format import until_stop
    return markers_to_source((signature + " " + tokenizer.decode(until_stop(tokenizer, generated))).strip())
