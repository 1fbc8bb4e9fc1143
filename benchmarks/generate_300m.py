#!/usr/bin/env python3
"""The released size (300m, E=1024, 24 blocks + top query layer), this project against HF transformers, in one run.

Randomly initialised networks, greedy, same prompts, N threads each. Every measured side runs in its own subprocess,
so its peak RSS (os.wait4) is its own. Baseline: `GPT2LMHeadModel` with 25 layers of the same width, heads, FFN,
positions and vocabulary, `generate(use_cache=True)` (the library the reference harness runs on).

Parts (--parts, comma-separated):
  prefill, decode  per batch size (--batches): prefill tokens/s (a generate of 1 new token over --prompt-len tokens),
                   decode tokens/s ((B x (N-1)) / (time of N new tokens - time of 1)), peak RSS of each side; at batch 1
                   the weight-streaming GB/s (fp32 weights x decode steps/s) next to a numpy memory-copy bandwidth
  load             from_pretrained on the released layout (fp16 pytorch_model.bin only) and on model.safetensors
                   (fp32): seconds and peak RSS against the fp32 weights (target <= 2x)
  eval             HumanEval greedy, --eval-new-tokens budget: `harness.evaluate` (our evaluation end to end, and its
                   generation stage alone) against a plain HF generate loop over the same prompt ids in dataset-order
                   batches of 16 (left-padded, eos = <eot>), per --eval-modes and --eval-stops: `budget` (every row
                   runs to the budget: random weights never emit <eot>) and `canonical` (each row ends after its
                   problem's canonical solution's tokens + <eot>, the same on both sides: ours frees the slot there,
                   HF is made to emit <eot> there and runs each batch until its last row ends), which shows what
                   continuous batching saves with a trained model's lengths

--isa avx2 caps both sides at AVX2 (what a CPU without AVX-512 runs): ours builds its kernels with
PANGU_CODECLM_KERNEL_ISA=avx2, torch's MKL, ATen and oneDNN are limited to AVX2 by their own variables.

The checkpoints are written once into --workdir (random weights, the project's writer) and reused. Run alone on the
machine; for medians of 3 runs:
    python benchmarks/repeat.py --runs 3 -- python benchmarks/generate_300m.py
    python benchmarks/generate_300m.py --parts decode --batches 1,8 --new-tokens 16      # a short look
    python benchmarks/generate_300m.py --parts eval --limit 16 --eval-modes corrected,paper
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GB = 1e9
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VOCAB_MODEL = os.path.join(ROOT, "..", "shared", "data", "pangu", "vocab.model")
SEPARATION_BY_VOCAB = {32013: "none", 64007: "full"}
PARTS = ("prefill", "decode", "load", "eval")
STOPS = {"budget": "every row runs to the budget (random weights never emit <eot>)",
         "canonical": "each row stops at its canonical solution's length + <eot> (a trained model's stand-in)"}
# the environment of every child per --isa: ours and torch's libraries (MKL, ATen, oneDNN) capped alike
ISA_ENV = {"native": {}, "avx2": {"PANGU_CODECLM_KERNEL_ISA": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                  "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
TARGETS = {"batch1": 1.0, "batch8": 1.5, "prefill": 1.0, "memory": 1.5, "load": 2.0, "eval": 0.6}


# ---------------------------------------------------------------------------------------------- children
def _config(vocab):
    from pangu_codeclm.config import PanguCodeCLMConfig
    return PanguCodeCLMConfig.preset("300m", separation=SEPARATION_BY_VOCAB[vocab], vocab_size=vocab)


def _ms_threads(threads):
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.device_context.cpu.op_tuning.threads_num(threads)


def _torch_threads(threads):
    import torch
    torch.set_num_threads(threads)
    return torch


def child_setup(a):
    """Write the two checkpoints (same random weights): DIR/st (model.safetensors fp32), DIR/bin (fp16
    pytorch_model.bin only, the released format)."""
    from pangu_codeclm.checkpoints.files import SAFETENSORS
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.families import family_for
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    config = _config(a.vocab)
    tokenizer = PanguTokenizer.from_vocab(VOCAB_MODEL, separation=config.separation)
    config = config.replace(pad_token_id=tokenizer.pad_id, eos_token_id=tokenizer.eot_id)
    weights = family_for(config).random_weights(config, seed=0)
    st, binary = _ckpt_dirs(a)
    write_hf(st, config, weights, tokenizer.separation_map, tokenizer, overwrite=True)
    write_hf(binary, config, weights, tokenizer.separation_map, tokenizer, write_bin=True, bin_dtype="float16",
             overwrite=True)
    os.remove(os.path.join(binary, SAFETENSORS))
    return {"params": sum(v.size for v in weights.values())}


def _prompts(vocab, batch, length, seed=0):
    import numpy as np
    return np.random.default_rng(seed).integers(3, min(vocab, 32000), size=(batch, length)).astype(np.int64)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _gen_figures(run, batch, prompt_len, new_tokens, reps):
    """Warm up (compile), then prefill = 1 new token, decode = N new tokens minus that; medians of `reps`."""
    run(new_tokens)
    run(1)
    one = statistics.median(_timed(lambda: run(1)) for _ in range(reps))
    full = statistics.median(_timed(lambda: run(new_tokens)) for _ in range(reps))
    return {"prefill_tps": batch * prompt_len / one,
            "decode_tps": batch * (new_tokens - 1) / max(full - one, 1e-9), "prefill_s": one, "generate_s": full}


def child_ours_gen(a):
    _ms_threads(a.threads)
    import pangu_codeclm
    model = pangu_codeclm.from_pretrained(_ckpt_dirs(a)[0])
    ids = _prompts(a.vocab, a.batch, a.prompt_len)
    out = _gen_figures(lambda n: model.generate(ids, max_new_tokens=n, eos_token_id=-1), a.batch, a.prompt_len,
                       a.new_tokens, a.reps)
    out["weight_bytes"] = 4 * sum(p.size for p in model.network.trainable_params())
    from pangu_codeclm.infer.memory import estimate
    out["estimate"] = estimate(model.config, a.batch, a.prompt_len + a.new_tokens)["total"]
    return out


def _hf_model(vocab, threads):
    torch = _torch_threads(threads)
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=1024, n_layer=25, n_head=16, n_inner=4096,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return torch, GPT2LMHeadModel(cfg).eval()


def child_hf_gen(a):
    torch, model = _hf_model(a.vocab, a.threads)
    ids = torch.from_numpy(_prompts(a.vocab, a.batch, a.prompt_len))
    mask = torch.ones_like(ids)

    def run(n):
        with torch.inference_mode():
            model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           use_cache=True, pad_token_id=0)

    out = _gen_figures(run, a.batch, a.prompt_len, a.new_tokens, a.reps)
    out["weight_bytes"] = 4 * sum(p.numel() for p in model.parameters())
    return out


def child_ours_load(a):
    _ms_threads(a.threads)
    import resource
    import pangu_codeclm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    model = pangu_codeclm.from_pretrained(a.dir)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_before_load": before,
            "weight_bytes": 4 * sum(p.size for p in model.network.trainable_params())}


def child_ours_eval(a):
    """harness.evaluate end to end (and its generation stage's own time); writes the prompt ids for the HF loop."""
    _ms_threads(a.threads)
    import pangu_codeclm
    from pangu_codeclm.evaluation import generation as generation_mod, harness, prompts, records
    from pangu_codeclm.evaluation.settings import Settings
    settings = Settings(dataset="humaneval", mode=a.mode, greedy=True, batch_size=16, max_length=1024,
                        max_new_tokens=a.eval_new_tokens, limit=a.limit, workers=2)
    model = pangu_codeclm.from_pretrained(_ckpt_dirs(a)[0])
    problems = harness.load_problems(settings)
    tasks = prompts.build_tasks(problems, settings.mode, settings.incremental)
    rows = [prompts.encode_prompt(model.tokenizer, t) for t in tasks]
    stops = _stops(model.tokenizer, problems, tasks, a.eval_new_tokens) if a.stops == "canonical" else None
    with open(a.prompt_file, "w", encoding="utf-8") as f:
        json.dump({"ids": [list(map(int, ids)) for ids, _ in rows], "eot": model.tokenizer.eot_id,
                   "pad": model.tokenizer.pad_id, "stops": stops}, f)
    if stops is not None:  # a row ends after its stop's tokens, as one that emits <eot> there would
        stop_of = {tuple(map(int, ids)): stop for (ids, _), stop in zip(rows, stops)}
        generate_many = model.generate_many

        def generate_many_with_stops(prompts_, max_new_tokens, **kwargs):
            budgets = [min(int(b), stop_of[tuple(map(int, p))]) for p, b in zip(prompts_, max_new_tokens)]
            return generate_many(prompts_, max_new_tokens=budgets, **kwargs)

        model.generate_many = generate_many_with_stops
    generation = []
    inner = generation_mod.generate_samples

    def timed_generate_samples(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            generation.append(time.perf_counter() - start)

    generation_mod.generate_samples = timed_generate_samples
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        harness.evaluate(settings, out_dir, model=model, progress=False)
        total = time.perf_counter() - start
        with open(os.path.join(out_dir, records.SAMPLES), encoding="utf-8") as f:
            generated = sum(len(json.loads(line).get("generated_ids", [])) for line in f if line.strip())
    return {"seconds": total, "generation_s": sum(generation), "problems": len(tasks), "new_tokens": generated}


def _stops(tokenizer, problems, tasks, budget):
    """Each task's simulated stop: its canonical solution's code-side tokens + the <eot>, at most `budget` (the
    length a trained model that wrote the canonical solution would generate)."""
    by_id = {p["task_id"]: p for p in problems}
    return [min(budget, len(tokenizer.encode_code(by_id[t["problem_id"]]["canonical_solution"])) + 1) for t in tasks]


def _forced_stops(torch, stops, prompt_width, eot):
    """An HF logits processor that makes row r emit <eot> as its stops[r]-th new token (the HF side of --stops)."""
    stops = torch.tensor(stops)

    def force(input_ids, scores):
        due = (input_ids.shape[1] - prompt_width + 1) >= stops
        scores[due] = float("-inf")
        scores[due, eot] = 0.0
        return scores

    return force


def child_hf_eval(a):
    """A plain HF loop: the same prompt ids in dataset order, batches of 16, left-padded, eos = <eot>; with
    --stops canonical each row emits <eot> at its stop (the batch runs until its last row has)."""
    torch, model = _hf_model(a.vocab, a.threads)
    from transformers import LogitsProcessorList
    with open(a.prompt_file, encoding="utf-8") as f:
        spec = json.load(f)
    generated = 0
    start = time.perf_counter()
    for b in range(0, len(spec["ids"]), 16):
        rows = spec["ids"][b:b + 16]
        width = max(map(len, rows))
        ids = torch.tensor([[spec["pad"]] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        stops = [] if spec["stops"] is None else [_forced_stops(torch, spec["stops"][b:b + 16], width, spec["eot"])]
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=mask, max_new_tokens=a.eval_new_tokens, do_sample=False,
                                 use_cache=True, eos_token_id=spec["eot"], pad_token_id=spec["pad"],
                                 logits_processor=LogitsProcessorList(stops))
        generated += int((out[:, width:] != spec["pad"]).sum())
    return {"seconds": time.perf_counter() - start, "problems": len(spec["ids"]), "new_tokens": generated}


CHILDREN = {"setup": child_setup, "ours-gen": child_ours_gen, "hf-gen": child_hf_gen, "ours-load": child_ours_load,
            "ours-eval": child_ours_eval, "hf-eval": child_hf_eval}


# ---------------------------------------------------------------------------------------------- parent
def _ckpt_dirs(a):
    return os.path.join(a.workdir, f"v{a.vocab}", "st"), os.path.join(a.workdir, f"v{a.vocab}", "bin")


def spawn(a, kind, **extra):
    """Run one child; (its JSON result, its peak RSS in bytes). A failed child stops the benchmark."""
    argv = [sys.executable, os.path.abspath(__file__), "--child", kind, "--vocab", str(a.vocab), "--workdir",
            a.workdir, "--threads", str(a.threads), "--prompt-len", str(a.prompt_len), "--new-tokens",
            str(a.new_tokens), "--reps", str(a.reps), "--limit", str(a.limit), "--eval-new-tokens",
            str(a.eval_new_tokens)]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   **ISA_ENV[a.isa])
        proc = subprocess.Popen(argv + ["--result", result.name], env=env, stdout=subprocess.DEVNULL if a.quiet
                                else sys.stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"child {kind} {extra} failed with exit status {proc.returncode}")
        return json.load(result), usage.ru_maxrss * 1024


def copy_bandwidth(nbytes=int(1e9), reps=5):
    """GB/s of a numpy copy of an `nbytes` array (bytes read + bytes written over the time), best of `reps`."""
    import numpy as np
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(reps))
    return 2 * nbytes / best / GB


def _ratio_line(name, ours, theirs, target, higher_is_better=True, fmt="{:.1f}", unit=""):
    ratio = ours / theirs
    ok = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    print(f"{name}: ours {fmt.format(ours)}{unit} | HF {fmt.format(theirs)}{unit} | ratio {ratio:.2f}x "
          f"(target {sign} {target:.1f}x: {'met' if ok else 'NOT met'})", flush=True)


def part_generation(a, parts):
    for batch in a.batches:
        ours, ours_rss = spawn(a, "ours-gen", batch=batch)
        hf, hf_rss = spawn(a, "hf-gen", batch=batch)
        if "prefill" in parts:
            _ratio_line(f"prefill tokens/s, batch {batch} x {a.prompt_len}", ours["prefill_tps"], hf["prefill_tps"],
                        TARGETS["prefill"])
        if "decode" in parts:
            _ratio_line(f"decode tokens/s, batch {batch}, {a.new_tokens} new", ours["decode_tps"], hf["decode_tps"],
                        TARGETS["batch1" if batch < 8 else "batch8"])
        _ratio_line(f"peak RSS, batch {batch}", ours_rss / GB, hf_rss / GB, TARGETS["memory"], False, "{:.2f}",
                    " GB")
        print(f"memory estimate (infer/memory.py), batch {batch}, {a.prompt_len + a.new_tokens} tokens: "
              f"{ours['estimate'] / GB:.2f} GB, measured ours {ours_rss / GB:.2f} GB (margin "
              f"{(ours['estimate'] - ours_rss) / GB:+.2f} GB)", flush=True)
        if batch == 1 and "decode" in parts:
            stream = [side["weight_bytes"] * side["decode_tps"] / GB for side in (ours, hf)]
            print(f"weight streaming at batch 1: ours {stream[0]:.1f} GB/s | HF {stream[1]:.1f} GB/s | memory copy "
                  f"{copy_bandwidth():.1f} GB/s (numpy copy of 1 GB, read + write)", flush=True)


def part_load(a):
    st, binary = _ckpt_dirs(a)
    for label, directory in (("pytorch_model.bin fp16", binary), ("model.safetensors fp32", st)):
        out, rss = spawn(a, "ours-load", dir=directory)
        print(f"load {label}: {out['seconds']:.1f} s, peak RSS {rss / GB:.2f} GB = "
              f"{rss / out['weight_bytes']:.2f}x the fp32 weights ({out['weight_bytes'] / GB:.2f} GB; "
              f"{out['rss_before_load'] / GB:.2f} GB before loading) (target <= {TARGETS['load']:.1f}x: "
              f"{'met' if rss <= TARGETS['load'] * out['weight_bytes'] else 'NOT met'})", flush=True)


def part_eval(a):
    for mode, stops in ((mode, stops) for mode in a.eval_modes for stops in a.eval_stops):
        if mode == "paper" and stops == "canonical":
            print("eval humaneval paper: --eval-stops canonical is measured in corrected mode only (paper mode decodes "
                  "fixed batches, which no row leaves early)", flush=True)
            continue
        prompt_file = os.path.join(a.workdir, f"prompts_v{a.vocab}_{mode}_{stops}.json")
        ours, ours_rss = spawn(a, "ours-eval", mode=mode, prompt_file=prompt_file, stops=stops)
        hf, hf_rss = spawn(a, "hf-eval", prompt_file=prompt_file)
        name = (f"eval humaneval {mode}, {ours['problems']} problems, {a.eval_new_tokens} new tokens, batch 16, "
                f"{STOPS[stops]}")
        _ratio_line(f"{name}, wall s (ours: whole evaluate)", ours["seconds"], hf["seconds"], TARGETS["eval"], False)
        _ratio_line(f"{name}, wall s (ours: generation stage)", ours["generation_s"], hf["seconds"], TARGETS["eval"],
                    False)
        print(f"{name}: new tokens ours {ours['new_tokens']} | HF {hf['new_tokens']}; peak RSS ours "
              f"{ours_rss / GB:.2f} GB | HF {hf_rss / GB:.2f} GB", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--batches", default="1,8,16,32", help="batch sizes of the prefill/decode parts")
    p.add_argument("--vocab", type=int, default=64007, choices=sorted(SEPARATION_BY_VOCAB),
                   help="64007 (full separation, the largest released) or 32013")
    p.add_argument("--prompt-len", type=int, default=150)
    p.add_argument("--new-tokens", type=int, default=32, help="new tokens of the decode measurement")
    p.add_argument("--reps", type=int, default=1, help="timed repetitions per figure inside one run (median)")
    p.add_argument("--eval-modes", default="corrected", help="comma-separated: corrected, paper")
    p.add_argument("--eval-new-tokens", type=int, default=128)
    p.add_argument("--eval-stops", default=",".join(STOPS), help="comma-separated: " + "; ".join(
        f"{k}: {v}" for k, v in STOPS.items()))
    p.add_argument("--limit", type=int, default=0, help="first N HumanEval problems (0: all 164)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--isa", default="native", choices=sorted(ISA_ENV),
                   help="native: each side's best vector code; avx2: both capped at AVX2")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pangu_codeclm_300m_bench"),
                   help="where the random 300m checkpoints are written once and reused")
    p.add_argument("--rewrite", action="store_true", help="write the checkpoints again")
    p.add_argument("--quiet", action="store_true", help="hide the children's output")
    # internal: one child
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--prompt-file", help=argparse.SUPPRESS)
    p.add_argument("--stops", choices=sorted(STOPS), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.batches = [int(b) for b in str(a.batches).split(",") if b.strip()]
    a.eval_modes = [m.strip() for m in a.eval_modes.split(",") if m.strip()]
    a.parts_list = [x.strip() for x in a.parts.split(",") if x.strip()]
    a.eval_stops = [m.strip() for m in a.eval_stops.split(",") if m.strip()]
    unknown = (sorted(set(a.parts_list) - set(PARTS)) + sorted(set(a.eval_modes) - {"corrected", "paper"}) +
               sorted(set(a.eval_stops) - set(STOPS)))
    if unknown:
        p.error(f"unknown part, eval mode or eval stops: {', '.join(unknown)}")
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.child:
        with open(a.result, "w", encoding="utf-8") as f:
            json.dump(CHILDREN[a.child](a), f)
        return 0
    os.makedirs(a.workdir, exist_ok=True)
    st, binary = _ckpt_dirs(a)
    if a.rewrite or not (os.path.isdir(st) and os.path.isdir(binary)):
        start = time.perf_counter()
        out, rss = spawn(a, "setup")
        print(f"# wrote random 300m checkpoints ({out['params'] / 1e6:.1f} M parameters) to {os.path.dirname(st)} in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    print(f"300m (E=1024, 24+1 layers, V={a.vocab}), random weights, fp32, greedy, {a.threads} threads each side, "
          f"one subprocess per figure" + (", both sides capped at AVX2" if a.isa == "avx2" else ""), flush=True)
    if {"prefill", "decode"} & set(a.parts_list):
        part_generation(a, a.parts_list)
    if "load" in a.parts_list:
        part_load(a)
    if "eval" in a.parts_list:
        part_eval(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
