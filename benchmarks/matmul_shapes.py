#!/usr/bin/env python3
"""MindSpore's CPU MatMul against torch at the 300m model's shapes: ms per product, GFLOP/s and weight GB/s.

Each side multiplies one input [M, K] by R distinct weights [K, N] (R x K x N fp32 larger than the L3 cache, so the
weights stream from memory as in a forward pass) and sums the products (so no product is dead code in the graph).
Run alone on the machine:
    python benchmarks/matmul_shapes.py                       # the 300m shapes at M = 1, 8, 150, 1024
    python benchmarks/matmul_shapes.py --shapes 1024x3072 --rows 64,2048
"""
import argparse
import statistics
import time

import numpy as np

SHAPES = ("1024x1024", "1024x2048", "1024x3072", "1024x4096", "4096x1024")
_CONFIGURED = []


def _timed(fn, reps):
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mindspore_side(weights, x, threads, reps):
    import mindspore as ms
    from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
    if not _CONFIGURED:
        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")
        ms.device_context.cpu.op_tuning.threads_num(threads)  # may be set once per process
        _CONFIGURED.append(threads)

    class Products(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ParameterTuple(Parameter(Tensor(w), name=f"w{i}") for i, w in enumerate(weights))
            self.matmul = ops.MatMul()

        def construct(self, x):
            total = self.matmul(x, self.w[0])
            for w in self.w[1:]:
                total = total + self.matmul(x, w)
            return total

    net, tx = Products(), Tensor(x)
    return _timed(lambda: net(tx).asnumpy(), reps)


def torch_side(weights, x, threads, reps):
    import torch
    torch.set_num_threads(threads)
    tw = [torch.from_numpy(w) for w in weights]
    tx = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            total = tx @ tw[0]
            for w in tw[1:]:
                total = total + tx @ w
            return total.numpy()

    return _timed(run, reps)


def numpy_side(weights, x, threads, reps):
    """numpy's BLAS (OpenBLAS in the wheel; its thread count is OPENBLAS_NUM_THREADS, read at import)."""
    def run():
        total = x @ weights[0]
        for w in weights[1:]:
            total = total + x @ w
        return total

    return _timed(run, reps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default=",".join(SHAPES), help="KxN weight shapes, comma-separated")
    p.add_argument("--rows", default="1,8,150,1024", help="M values, comma-separated")
    p.add_argument("--weights-mb", type=float, default=400.0, help="total weight megabytes per shape (> L3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--sides", default="mindspore,torch", help="of mindspore, torch, numpy")
    a = p.parse_args(argv)
    sides = {"mindspore": mindspore_side, "torch": torch_side, "numpy": numpy_side}
    rng = np.random.default_rng(0)
    print(f"{'side':10s} {'K x N':>10s} {'M':>5s} {'ms/product':>11s} {'GFLOP/s':>8s} {'GB/s':>6s}")
    for shape in a.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        count = max(1, int(a.weights_mb * 1e6 / (4 * k * n)))
        weights = [rng.standard_normal((k, n), dtype=np.float32) * 0.02 for _ in range(count)]
        for m in (int(v) for v in a.rows.split(",")):
            x = rng.standard_normal((m, k), dtype=np.float32)
            for side in a.sides.split(","):
                per = sides[side](weights, x, a.threads, a.reps) / count
                print(f"{side:10s} {shape:>10s} {m:5d} {per * 1e3:11.3f} {2 * m * k * n / per / 1e9:8.1f} "
                      f"{4 * k * n / per / 1e9:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
