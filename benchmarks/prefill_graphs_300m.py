#!/usr/bin/env python3
"""Peak RSS of 300m prefills over many prompt lengths: one dynamic-shape prefill graph against one static graph per
prompt bucket (each static graph keeps its buffers while the decoder lives).

Loads the random 300m checkpoint that benchmarks/generate_300m.py writes (run that once first), reserves caches for
16 rows of 768 slots, then runs `generate_many` over 16 prompts of each length (--lengths, 2 new tokens) and prints
each side's wall seconds per length and its peak RSS. Each side runs in its own subprocess. Run alone on the machine:
    python benchmarks/prefill_graphs_300m.py
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_300m import _ckpt_dirs, _ms_threads  # noqa: E402  (the same checkpoint and threads)

LENGTHS = "60,120,180,250,320,400,500,600"


def child(a):
    """One side: prints 'length seconds' lines, then 'peak GB'."""
    import numpy as np
    _ms_threads(a.threads)
    import pangu_codeclm
    from pangu_codeclm.infer.generate import decoder_for, generate_many
    model = pangu_codeclm.from_pretrained(_ckpt_dirs(a)[0])
    decoder = decoder_for(model.network)
    decoder.set_dynamic_prefill(a.child == "dynamic")
    decoder.reserve(a.batch, 768)
    rng = np.random.default_rng(0)
    for length in map(int, a.lengths.split(",")):
        prompts = [rng.integers(10, 30000, size=length) for _ in range(a.batch)]
        start = time.perf_counter()
        generate_many(model.network, prompts, max_new_tokens=2, batch_size=a.batch, eos_token_id=-1)
        print(f"length {length} {time.perf_counter() - start:.1f}", flush=True)
    print(f"graphs {decoder.prefill_graphs}")
    print(f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default=LENGTHS, help="comma-separated prompt lengths, in this order")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=64007)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pangu_codeclm_300m_bench"))
    p.add_argument("--child", choices=("dynamic", "static"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a)
        return 0
    if not os.path.isdir(_ckpt_dirs(a)[0]):
        raise SystemExit(f"{_ckpt_dirs(a)[0]}: no 300m checkpoint; run python benchmarks/generate_300m.py --parts load")
    print(f"300m, V={a.vocab}, batch {a.batch}, caches of 768 slots, prompt lengths {a.lengths}, 2 new tokens")
    for side in ("dynamic", "static"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", side, "--lengths", a.lengths,
                              "--batch", str(a.batch), "--vocab", str(a.vocab), "--threads", str(a.threads),
                              "--workdir", a.workdir], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(" ", 1) for line in out.splitlines() if line.split(" ", 1)[0] in ("graphs", "peak"))
        times = [line.split()[2] for line in out.splitlines() if line.startswith("length ")]
        label = "one dynamic-shape graph" if side == "dynamic" else "a static graph per length"
        print(f"{label:26s}: {fields['graphs']} prefill graph(s), peak RSS {fields['peak']} GB, seconds per length "
              f"{' '.join(times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
