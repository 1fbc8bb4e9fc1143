"""Training-step tokens/s: the MindSpore network vs the PyTorch module (pangu_codeclm.convert.torch_model), same
config, same weights, same batch, AdamW, fp32, N threads each; steps alternate between the two and medians are
compared. Then greedy decode tokens/s with the KV cache vs full recomputation (benchmarks/generate.py).

    python benchmarks/train_step.py                                   # E=512, 6 blocks + top, T=512, B=4, V=32013
    python benchmarks/train_step.py --hidden 128 --seq 128 --steps 3 --decode-tokens 64   # a quick run
"""
import argparse
import gc
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import build_network, measure_decode, report  # noqa: E402  (benchmarks/generate.py)


def make_batch(cfg, seed=0):
    """Two packed Code-CLM samples per row: ids, unshifted labels, positions, 3-D mask, docstr mask."""
    rng = np.random.default_rng(seed)
    b, t = cfg.batch_size, cfg.seq_length
    ids = rng.integers(0, cfg.vocab_size, (b, t)).astype(np.int32)
    labels = ids.copy()
    pos = np.zeros((b, t), np.int32)
    mask = np.zeros((b, t, t), np.float32)
    docstr = np.zeros((b, t), np.int32)
    for start, n in ((0, t // 2), (t // 2, t - t // 2)):
        mask[:, start:start + n, start:start + n] = np.tril(np.ones((n, n), np.float32))
        pos[:, start:start + n] = np.arange(n)
        docstr[:, start:start + n // 4] = 1
    labels[docstr == 1] = -100
    return ids, labels, pos, mask, docstr


def mindspore_step(cfg, batch, lr):
    import mindspore as ms
    from mindspore import nn
    from pangu_codeclm.model import PanguCodeCLMForCausalLM

    net = PanguCodeCLMForCausalLM(cfg)

    class WithLoss(nn.Cell):
        """Exactly five inputs: TrainOneStepCell passes the loss sensitivity as one more positional argument, which
        the network's optional `prefix_lm_mask` would otherwise take."""

        def __init__(self, network):
            super().__init__(auto_prefix=False)
            self.network = network

        def construct(self, ids, labels, pos, mask, docstr):
            return self.network(ids, labels, pos, mask, docstr)

    optimizer = nn.AdamWeightDecay(net.trainable_params(), learning_rate=lr, weight_decay=0.01)
    step = nn.TrainOneStepCell(WithLoss(net), optimizer)
    step.set_train(True)
    tensors = [ms.Tensor(x) for x in batch]
    weights = {name: p.asnumpy() for name, p in net.parameters_and_names() if p.requires_grad}
    return (lambda: float(step(*tensors).asnumpy())), weights


def torch_step(cfg, batch, lr, weights):
    import torch
    from pangu_codeclm.convert.torch_model import TorchPanguCodeCLM, state_dict_from_numpy

    model = TorchPanguCodeCLM(cfg)
    model.load_state_dict(state_dict_from_numpy(weights), strict=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    ids, labels, pos, mask, docstr = (torch.from_numpy(x) for x in batch)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids.long(), labels.long(), attention_mask=mask, position_ids=pos.long(),
                          docstr_mask=docstr)
        loss.backward()
        optimizer.step()
        return loss.item()
    return run


def benchmark_train(cfg, steps):
    """Alternate MindSpore and PyTorch training steps on the same weights and batch; print medians and ratio."""
    batch = make_batch(cfg)
    ms_run, weights = mindspore_step(cfg, batch, 1e-4)
    pt_run = torch_step(cfg, batch, 1e-4, weights)
    tokens = cfg.batch_size * cfg.seq_length
    t0 = time.perf_counter()
    first = ms_run(), pt_run()  # warm-up (MindSpore compiles here); same weights and batch -> same first loss
    print(f"warm-up {time.perf_counter() - t0:.1f}s; first-step loss MindSpore {first[0]:.5f} PyTorch {first[1]:.5f}",
          flush=True)
    times = {"mindspore": [], "pytorch": []}
    for _ in range(steps):
        for name, run in (("mindspore", ms_run), ("pytorch", pt_run)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    ms_tps = tokens / statistics.median(times["mindspore"])
    pt_tps = tokens / statistics.median(times["pytorch"])
    print(f"train step tokens/s (median of {steps}): MindSpore {ms_tps:.1f} | PyTorch {pt_tps:.1f} | "
          f"ratio {ms_tps / pt_tps:.2f}x", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32013)
    parser.add_argument("--steps", type=int, default=5,
                        help="timed steps per framework (after one warm-up); 0 skips the training benchmark")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode-tokens", type=int, default=256, help="0 skips the decode benchmark")
    parser.add_argument("--prompt-len", type=int, default=64)
    args = parser.parse_args(argv)

    import mindspore as ms
    import torch
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(args.threads)
    ms.set_seed(0)
    torch.set_num_threads(args.threads)
    from pangu_codeclm.config import PanguCodeCLMConfig

    dims = dict(vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                ffn_hidden_size=4 * args.hidden)
    cfg = PanguCodeCLMConfig(**dims, max_position_embeddings=max(args.seq, 1024), seq_length=args.seq,
                             batch_size=args.batch, embedding_dropout=0.0, hidden_dropout=0.0, attention_dropout=0.0)
    print(f"config: E={args.hidden} blocks={args.layers}+top heads={args.heads} T={args.seq} B={args.batch} "
          f"V={args.vocab}, fp32, AdamW, {args.threads} threads each", flush=True)
    if args.steps:
        benchmark_train(cfg, args.steps)
        gc.collect()  # free both training setups before timing the decoder

    if args.decode_tokens:
        net = build_network(max_positions=cfg.max_position_embeddings, **dims)
        result = measure_decode(net, args.prompt_len, args.decode_tokens)
        print(f"decode, {args.decode_tokens} new tokens after a {args.prompt_len}-token prompt:")
        report("model", net, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
