"""Incremental decoding for PanguCodeCLMForCausalLM: a prefill graph and a one-token decode graph with a KV cache.

Prompts are re-packed right-aligned (left padding) into a bucketed length, the cache length is bucketed too, so each
graph compiles once per (batch, bucket) shape; the masked slots never change a result. The cache holds num_layers + 1
K/V tensors (the ordinary blocks and the top query layer). Sampling (temperature, top-k, top-p) runs in numpy on the
fp32 logits with `np.random.default_rng(seed)`. Separated models generate only code-side ids. Prefix Code CLM: the
prefill takes a per-row prefix index (the reference's form, moved into the re-packed layout so that it covers the same
real tokens); decode steps attend the cache causally. Each row stops at its own max position.
"""
import logging
import weakref

import numpy as np

LOG = logging.getLogger(__name__)
_DECODERS = weakref.WeakKeyDictionary()


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
    """Prefill/decode graphs of one network with in-place KV caches, one set per (batch, cache length) shape.

    The caches are num_layers + 1 pairs of fp32 Parameters [B,H,L,D] updated in place by the graphs (no cache copies
    per token). Use `decoder_for(network)`; up to `keep` shapes stay compiled.
    """

    def __init__(self, network, keep=4):
        import mindspore as ms
        self.ms = ms
        self.network = network
        self.keep = keep
        self._shapes = {}

    def _cells(self, batch, cache_len):
        key = (batch, cache_len)
        if key not in self._shapes:
            if len(self._shapes) >= self.keep:
                self._shapes.pop(next(iter(self._shapes)))
            self._shapes[key] = _make_cells(self.network, batch, cache_len)
        return self._shapes[key]

    def prefill(self, ids, positions, mask, cache_len, prefix_index=None):
        """Run the prompt [B,P] (fills cache slots 0..P-1); returns last-position logits, numpy [B,V].
        `prefix_index` [B] (the reference's index form, -1 or None: causal) opens the prefix keys to every query."""
        t, ms = self.ms.Tensor, self.ms
        batch, seq = ids.shape
        index = _cache_index(batch, self.network.config.num_heads, np.arange(seq))
        prefix = np.full(batch, -1, np.int32) if prefix_index is None else np.asarray(prefix_index, np.int32)
        prefill_cell, _ = self._cells(batch, cache_len)
        return prefill_cell(t(ids, ms.int32), t(positions, ms.int32), t(mask, ms.float32), t(prefix, ms.int32),
                            t(index)).asnumpy()

    def decode(self, ids, positions, valid, slot):
        """One token per row [B,1] written at cache slot `slot`; returns logits, numpy [B,V]."""
        t, ms = self.ms.Tensor, self.ms
        batch, cache_len = valid.shape
        index = _cache_index(batch, self.network.config.num_heads, np.array([slot]))
        _, decode_cell = self._cells(batch, cache_len)
        return decode_cell(t(ids, ms.int32), t(positions, ms.int32), t(valid, ms.float32), t(index)).asnumpy()

    def full_logits(self, ids, positions, mask, prefix_index=None):
        """Last-position logits [B,V] by recomputing the whole (left-padded) sequence (prefix as in `prefill`)."""
        t, ms = self.ms.Tensor, self.ms
        prefix = None if prefix_index is None else t(prefix_lm_matrix(prefix_index, ids.shape[1]), ms.float32)
        logits = self.network(t(ids, ms.int32), position_ids=t(positions, ms.int32),
                              attention_mask=t(mask, ms.float32), prefix_lm_mask=prefix)
        return logits[:, -1].asnumpy()


def _cache_index(batch, heads, slots):
    """ScatterNd indices [B,H,len(slots),3] of (b, h, slot)."""
    b, h, s = np.meshgrid(np.arange(batch), np.arange(heads), slots, indexing="ij")
    return np.stack([b, h, s], axis=-1).astype(np.int32)


def _make_cells(network, batch, cache_len):
    """(prefill cell, decode cell) sharing fresh cache Parameters of shape [B,H,L,D]."""
    from mindspore import Parameter, ParameterTuple, Tensor, nn
    cfg = network.config
    shape = (batch, cfg.num_heads, cache_len, cfg.hidden_size // cfg.num_heads)
    tag = f"kv_cache_{id(network)}_{batch}x{cache_len}"

    def caches(kind):
        return ParameterTuple(Parameter(Tensor(np.zeros(shape, np.float32)), name=f"{tag}.{kind}.{i}",
                                        requires_grad=False) for i in range(cfg.num_layers + 1))

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
        def construct(self, input_ids, position_ids, valid, cache_index):
            return self.net.decode(input_ids, position_ids, valid, cache_index, self.k_caches, self.v_caches)

    cells = Prefill(network), Decode(network)
    for cell in cells:
        cell.set_train(False)
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
    out = np.full((ids.shape[0], length), pad_id, dtype=np.int32)
    out_mask = np.zeros((ids.shape[0], length), dtype=np.float32)
    for b in range(ids.shape[0]):
        real = ids[b][mask[b] > 0]
        out[b, length - real.size:] = real
        out_mask[b, length - real.size:] = 1.0
    return out, out_mask


def generate(network, input_ids, attention_mask=None, max_new_tokens=64, do_sample=False, temperature=1.0, top_p=1.0,
             top_k=0, eos_token_id=None, pad_token_id=None, seed=None, allowed_vocab_mask=None, use_cache=True,
             prompt_bucket=64, cache_bucket=128, return_scores=False, progress=False, prefix_index=None):
    """Continue each prompt row; returns int numpy [B, T + n] (the prompt as given + n generated ids).

    `attention_mask` [B,T] marks real prompt tokens (padding anywhere is allowed; left padding is usual). A row that
    produced `eos_token_id`, or whose prompt plus continuation reached the model's max positions, gets `pad_token_id`
    afterwards; generation stops when every row is done or after `max_new_tokens`. Separated models (and
    `allowed_vocab_mask`, bool [V]) restrict the ids that may be produced. `prefix_index` [B] (Prefix Code CLM, the
    reference's index form in `input_ids`' coordinates; -1: none): the prompt keys at positions <= it are visible to
    every prompt query in prefill; decode steps are causal over the cache. `use_cache=False` recomputes the whole
    sequence per token (the baseline). With `return_scores`, also returns the per-step fp32 logits [n][B,V].
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
    allowed = None
    if network.separation_map:
        allowed = network.code_vocabulary() > 0
    if allowed_vocab_mask is not None:
        extra = np.asarray(allowed_vocab_mask).astype(bool)
        if extra.shape != (vocab,):
            raise ValueError(f"allowed_vocab_mask: expected shape ({vocab},), got {extra.shape}")
        allowed = extra if allowed is None else allowed & extra
    if allowed is not None and not allowed.any():
        raise ValueError("allowed_vocab_mask: no vocabulary id is left for generation (a separated model also keeps "
                         "only its code-side ids)")
    prefix_counts = None if prefix_index is None else _prefix_counts(prefix_index, mask)

    batch = ids.shape[0]
    max_pos = network.max_positions
    lengths = (mask > 0).sum(-1)
    longest = int(lengths.max())
    if longest >= max_pos:
        raise ValueError(f"input_ids: a prompt has {longest} tokens; the model allows at most {max_pos - 1} "
                         f"before generating")
    room = max_pos - lengths  # each row's own position limit: rows are independent of their batch
    steps = min(int(max_new_tokens), int(room.max()))
    prompt_len = min(round_up(longest, prompt_bucket), max_pos)
    cache_len = round_up(prompt_len + steps, cache_bucket)
    prompt, prompt_mask = _right_align(ids, mask, prompt_len, 0)
    prompt_prefix = None if prefix_counts is None else _prefix_in_layout(prefix_counts, prompt_mask)
    decoder = decoder_for(network)
    was_training = network.training
    network.set_train(False)
    rng = np.random.default_rng(seed)
    generated = np.full((batch, steps), pad_id, dtype=np.int64)
    fed = np.zeros((batch, steps), dtype=np.int64)  # what the model reads back (finished rows: their own choice)
    done = np.zeros(batch, dtype=bool)
    scores = []
    last_pos = left_pad_positions(prompt_mask)[:, -1].astype(np.int64)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc="generate", unit="tok")
    try:
        if steps > 0 and use_cache:
            logits = decoder.prefill(prompt, left_pad_positions(prompt_mask), prompt_mask, cache_len, prompt_prefix)
            valid = np.zeros((batch, cache_len), np.float32)
            valid[:, :prompt_len] = prompt_mask
        for i in range(steps):
            if not use_cache:
                logits = _recompute_last(decoder, prompt, prompt_mask, fed[:, :i], prompt_bucket, prefix_counts)
            if return_scores:
                scores.append(logits.copy())
            chosen = select_tokens(logits, rng, do_sample, temperature, top_k, top_p, allowed)
            token = np.where(done, pad_id, chosen)
            generated[:, i] = token
            fed[:, i] = chosen
            if eos_token_id is not None:
                done |= token == eos_token_id
            done |= i + 1 >= room
            if bar is not None:
                bar.update(1)
            if done.all() or i == steps - 1:
                generated = generated[:, :i + 1]
                break
            if use_cache:
                slot = prompt_len + i
                valid[:, slot] = 1.0
                last_pos = np.minimum(last_pos + 1, max_pos - 1)  # rows at their limit are done; outputs unused
                # finished rows keep decoding their own choice (pad ids may lie outside a small vocabulary)
                logits = decoder.decode(chosen[:, None], last_pos[:, None], valid, slot)
    finally:
        if bar is not None:
            bar.close()
        network.set_train(was_training)
    out = np.concatenate([ids, generated], axis=1)
    return (out, scores) if return_scores else out


def _recompute_last(decoder, prompt, prompt_mask, generated, bucket, prefix_counts=None):
    """Baseline: last-position logits of prompt + generated, recomputed in full (left-padded to a bucket)."""
    seq = np.concatenate([prompt, generated.astype(np.int32)], axis=1)
    seq_mask = np.concatenate([prompt_mask, np.ones(generated.shape, np.float32)], axis=1)
    seq_mask = seq_mask * (np.cumsum(seq_mask, -1) <= decoder.network.max_positions)  # rows past their limit
    length = min(round_up(seq.shape[1], bucket), decoder.network.max_positions)  # >= every row's real tokens
    ids, mask = _right_align(seq, seq_mask, length, 0)
    prefix = None if prefix_counts is None else _prefix_in_layout(prefix_counts, mask)
    return decoder.full_logits(ids, left_pad_positions(mask), mask, prefix)
