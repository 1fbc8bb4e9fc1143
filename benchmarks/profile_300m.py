#!/usr/bin/env python3
"""Where a 300m prefill or decode step spends its time: MindSpore's CPU profiler, summed per op type and per matmul.

Loads the random 300m checkpoint that benchmarks/generate_300m.py writes (run that once first), warms the graphs up,
then profiles `--runs` generate calls and prints op milliseconds per call: every op type, the fused CPU kernels by the
cell that runs them, then each Conv1D's MatMul by layer kind with the GB/s at which it streams its weights. Run alone
on the machine:
    python benchmarks/profile_300m.py --part prefill                    # one 150-token prompt
    python benchmarks/profile_300m.py --part prefill --one-product      # c_attn as the one [E,3E] product
    python benchmarks/profile_300m.py --part decode --batch 8           # 16 greedy decode steps
"""
import argparse
import collections
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_300m import _ckpt_dirs, _ms_threads, _prompts  # noqa: E402  (the same checkpoint and prompts)


def op_timeline(profile_dir):
    """[(start, ms, op full name)] in time order, from the profiler's CPU op timeline."""
    found = glob.glob(os.path.join(profile_dir, "**", "cpu_op_execute_timestamp_0.txt"), recursive=True)
    if not found:
        raise SystemExit(f"{profile_dir}: the profiler wrote no cpu_op_execute_timestamp_0.txt")
    ops = []
    with open(found[0], encoding="utf-8") as f:
        for line in f:
            name, _, rest = line.strip().split(";", 2)
            for item in rest.split(" "):
                start, ms, _ = item.split(",")
                ops.append((int(start), float(ms), name))
    return sorted(ops)


def op_type(name):
    return name.rsplit("/", 1)[-1].split("-op")[0]


def decode_steps(ops):
    """(the ops of whole decode steps, their count): from the first greedy step's Argmax to the last one's (the
    prompt's prefill and the first step fall before)."""
    ends = [i for i, (_, _, name) in enumerate(ops) if op_type(name) == "Argmax"]
    if len(ends) < 2:
        raise SystemExit("fewer than two decode steps were profiled: raise --steps")
    return ops[ends[0] + 1:ends[-1] + 1], len(ends) - 1


def cell_path(name):
    """The names of the cells an op runs in, outermost first ('.../attn-X/Custom-op1' -> [..., 'attn'])."""
    return [part.split("-")[0] for part in name.split("/")[:-1]]


def cell_of(name):
    """The innermost cell an op runs in."""
    return (cell_path(name) or ["(top)"])[-1]


def matmul_kind(name):
    """'attn.c_attn', 'mlp.c_fc', ... for a Conv1D MatMul; 'head' for the tied head."""
    cells = cell_path(name)
    if cells and cells[-1] in ("c_attn", "c_proj", "c_fc", "q_attn"):
        return ".".join(cells[-2:])
    return "head"


def tally(ops, per, key, only=None):
    """Milliseconds per call summed by key(op name), over the ops of type `only` (every op when None)."""
    totals = collections.Counter()
    for _, ms, name in ops:
        if only is None or op_type(name) == only:
            totals[key(name)] += ms / per
    return totals


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("prefill", "decode"), default="prefill")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=150)
    p.add_argument("--steps", type=int, default=16, help="decode steps per profiled call")
    p.add_argument("--runs", type=int, default=2, help="profiled calls (prefill; decode profiles one call)")
    p.add_argument("--vocab", type=int, default=64007)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one-product", action="store_true", help="c_attn as one product at every row count")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pangu_codeclm_300m_bench"))
    a = p.parse_args(argv)
    _ms_threads(a.threads)
    import pangu_codeclm
    from mindspore import Profiler
    st = _ckpt_dirs(a)[0]
    if not os.path.isdir(st):
        raise SystemExit(f"{st}: no 300m checkpoint; run python benchmarks/generate_300m.py --parts load first")
    model = pangu_codeclm.from_pretrained(st)
    if a.one_product:
        for block in model.network.transformer.h:
            block.attn.q_apart = False
    ids = _prompts(a.vocab, a.batch, a.prompt_len)
    new = 1 if a.part == "prefill" else a.steps + 1

    def call():
        model.generate(ids, max_new_tokens=new, eos_token_id=-1)

    call()
    call()
    start = time.perf_counter()
    call()
    wall = time.perf_counter() - start
    runs = a.runs if a.part == "prefill" else 1
    with tempfile.TemporaryDirectory() as out:
        profiler = Profiler(output_path=out)
        for _ in range(runs):
            call()
        profiler.analyse()
        ops = op_timeline(out)
    ops, per = (ops, runs) if a.part == "prefill" else decode_steps(ops)
    unit = "call" if a.part == "prefill" else "decode step"
    unprofiled = wall * 1e3 if a.part == "prefill" else float("nan")
    print(f"# {a.part}, batch {a.batch}, prompt {a.prompt_len}, c_attn "
          f"{'one product' if a.one_product else 'q apart from k|v (>= 64 rows)'}"
          + (f"; unprofiled wall {unprofiled:.0f} ms per call" if a.part == "prefill" else ""))
    by_type = tally(ops, per, op_type)
    print(f"op time per {unit}: {sum(by_type.values()):.1f} ms")
    for op, ms in by_type.most_common(12):
        print(f"  {op:24s} {ms:9.2f} ms")
    weight_bytes = collections.Counter()
    for key, param in model.network.parameters_and_names():
        parts = key.split(".")
        if parts[-1] == "weight" and parts[-2] in ("c_attn", "c_proj", "c_fc", "q_attn"):
            weight_bytes[".".join(parts[-3:-1])] += 4 * param.size
    weight_bytes["head"] = 4 * model.network.transformer.wte.weight.size
    print(f"fused CPU kernels (Custom) by the cell that runs them (ms per {unit})")
    for cell, ms in tally(ops, per, cell_of, only="Custom").most_common():
        print(f"  {cell:24s} {ms:9.2f} ms")
    by_kind = tally(ops, per, matmul_kind, only="MatMul")
    print(f"MatMul by layer kind (ms per {unit}; GB/s: its weights' bytes over that time)")
    for kind, ms in by_kind.most_common():
        print(f"  {kind:24s} {ms:9.2f} ms  {weight_bytes[kind] / (ms / 1e3) / 1e9:6.1f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
