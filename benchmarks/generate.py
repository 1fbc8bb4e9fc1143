"""Greedy decoding tokens/s: KV cache (prefill + one-token decode graphs) vs full recomputation, same network.

The baseline recomputes the whole sequence for every new token (left-padded to a 64-token bucket so it compiles once
per bucket, not per length). Both runs are warmed up first (graphs compiled), then timed; the printed ratio is
cached/full. Example (the default runs the tiny and a ~40M-parameter config):
    python benchmarks/generate.py --new-tokens 256 --threads 2
"""
import argparse
import time

import numpy as np

CONFIGS = {
    "tiny": dict(vocab_size=32013, hidden_size=64, num_layers=2, num_heads=4, ffn_hidden_size=256),
    "40m": dict(vocab_size=32013, hidden_size=512, num_layers=6, num_heads=8, ffn_hidden_size=2048),
}


def build_network(max_positions=1024, **dims):
    """A randomly initialised PanguCodeCLMForCausalLM in eval mode (no dropout)."""
    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.model import PanguCodeCLMForCausalLM
    cfg = PanguCodeCLMConfig(max_position_embeddings=max_positions, seq_length=max_positions, embedding_dropout=0.0,
                             hidden_dropout=0.0, attention_dropout=0.0, **dims)
    net = PanguCodeCLMForCausalLM(cfg)
    net.set_train(False)
    return net


def _compile_full_recompute_buckets(net, batch, longest, bucket=64):
    """Compile the full-recompute forward for every bucketed length the baseline will meet."""
    from pangu_codeclm.infer.generate import decoder_for, round_up
    decoder = decoder_for(net)
    for length in range(bucket, min(round_up(longest, bucket), net.max_positions) + 1, bucket):
        ones = np.ones((batch, length), np.float32)
        decoder.full_logits(np.zeros((batch, length), np.int32), np.cumsum(ones, -1).astype(np.int32) - 1, ones)


def measure_decode(net, prompt_len, new_tokens, batch=1, seed=0):
    """Return {'cache': tok/s, 'full': tok/s, 'same': bool} for greedy decoding of `new_tokens` tokens."""
    from pangu_codeclm.infer.generate import generate
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, net.vocab_size, (batch, prompt_len))
    result = {}
    outputs = {}
    _compile_full_recompute_buckets(net, batch, prompt_len + new_tokens)
    for name, use_cache in (("cache", True), ("full", False)):
        if use_cache:
            generate(net, ids, max_new_tokens=new_tokens, use_cache=True)  # compile prefill and decode
        start = time.perf_counter()
        outputs[name] = generate(net, ids, max_new_tokens=new_tokens, use_cache=use_cache)
        elapsed = time.perf_counter() - start
        result[name] = batch * (outputs[name].shape[1] - prompt_len) / elapsed
    result["same"] = bool(np.array_equal(outputs["cache"], outputs["full"]))
    return result


def report(name, net, result):
    params = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    print(f"{name:>5} ({params / 1e6:.1f}M params): KV cache {result['cache']:.1f} tok/s | full recompute "
          f"{result['full']:.1f} tok/s | KV-cache speed-up {result['cache'] / result['full']:.1f}x | same tokens: "
          f"{result['same']}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(args.threads)
    for name in args.configs:
        net = build_network(**CONFIGS[name])
        report(name, net, measure_decode(net, args.prompt_len, args.new_tokens, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
