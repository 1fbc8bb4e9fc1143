"""The demo's stages: each runs one `pangu-codeclm` step and returns a one-line summary dict.

See `pangu_codeclm.demo` for the runner (logs, resume, progress). Artifacts, under the workdir:
pairs.jsonl, tokenizer/, data/, train/ (metrics.csv, loss_curve.png, checkpoints), model/ (MindSpore layout),
hf/ (HF PyTorch layout), eval/<dataset>/ (samples, results, summary, plot), results.md.
"""
import ast
import csv
import glob
import json
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "configs", "pangu_codeclm_tiny_cpu.yaml")
CALIBRATION_STEPS = 12
BATCH_SIZE = 8


def _load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_metrics(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _mbpp_path(demo):
    from .benchmarks.mbpp import local_mbpp_path
    return local_mbpp_path(demo.args.mbpp_path)


# ---------------------------------------------------------------------------------------------------------- stages
def mine(demo):
    argv = demo.cli("mine", *(demo.args.mine_source or []), "--out", demo.path("pairs.jsonl"), "--workers", 2,
                    "--summary", demo.path("mine_summary.json"))
    mbpp = _mbpp_path(demo)
    if mbpp:
        argv += ["--mbpp-path", mbpp]
    demo.run_command("mine", argv)
    summary = _load_json(demo.path("mine_summary.json"))
    return {"files_read": summary["files_read"], "pairs_kept": summary["pairs_kept"],
            "decontaminated": summary["contaminated"], "benchmarks": "+".join(sorted(summary["decontamination"]))}


def tokenizer(demo):
    demo.run_command("tokenizer", demo.cli("tokenizer", "train", "--records", demo.path("pairs.jsonl"),
                                           "--vocab-size", demo.args.vocab_size, "--separation", "full",
                                           "--out", demo.path("tokenizer")))
    from .tokenization.registry import load_tokenizer
    tok = load_tokenizer(demo.path("tokenizer"))
    return {"vocab_size": tok.vocab_size, "separation": tok.separation, "map_entries": len(tok.separation_map)}


def prepare(demo):
    demo.run_command("prepare", demo.cli("prepare", "--records", demo.path("pairs.jsonl"),
                                         "--tokenizer", demo.path("tokenizer"), "--objective", "code",
                                         "--seq-length", demo.args.seq_length, "--out", demo.path("data"),
                                         "--workers", 2, "--overwrite"))
    meta = _load_json(demo.path("data", "meta.json"))
    return {k: meta[k] for k in ("samples", "rows", "tokens", "dropped_too_long")}


def _train_argv(demo, output_dir, steps):
    from .tokenization.registry import load_tokenizer
    tok = load_tokenizer(demo.path("tokenizer"))
    seq = demo.args.seq_length
    sets = {
        "model.model_config.vocab_size": tok.vocab_size,
        "model.model_config.separation": tok.separation,
        "model.model_config.seq_length": seq,
        "model.model_config.max_position_embeddings": max(seq, 256),
        "model.model_config.pad_token_id": tok.pad_id,
        "model.model_config.eos_token_id": tok.eot_id,
        "model.model_config.batch_size": BATCH_SIZE,
        "runner_config.batch_size": BATCH_SIZE,
        "pangu.separation_map": demo.path("tokenizer", "replicated_tokens_map.pkl"),
        "pangu.train_steps": steps,
        "pangu.save_steps": max(1, steps // 4),
        "pangu.log_steps": 10,
        "pangu.show_bar": False,
    }
    argv = [sys.executable, os.path.join(ROOT, "train.py"), "--config", TINY_CONFIG, "--device_target", "CPU",
            "--output_dir", output_dir, "--train_dataset_dir", demo.path("data")]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def train(demo):
    """Calibrate the step time on a short run, then train for the budget; resumes an interrupted run."""
    calib_dir = demo.path("train_calibration")
    metrics_path = os.path.join(calib_dir, "metrics.csv")
    if not os.path.exists(metrics_path):
        demo.run_command("train_calibration", _train_argv(demo, calib_dir, CALIBRATION_STEPS))
    rows = _read_metrics(metrics_path)
    t = [float(r["elapsed_s"]) for r in rows]
    step_s = (t[-1] - t[1]) / max(1, len(t) - 2)
    budget_s = demo.args.minutes * 60
    steps = max(20, int(budget_s / max(step_s, 1e-3)))
    out = demo.path("train")
    argv = _train_argv(demo, out, steps)
    if os.path.isdir(os.path.join(out, "checkpoint")):
        argv.append("--resume")
    demo.run_command("train", argv, budget_s=budget_s)
    rows = _read_metrics(os.path.join(out, "metrics.csv"))
    first, last = rows[0], rows[-1]
    tail = rows[-10:]
    return {"steps": int(last["step"]), "step_s": round(step_s, 3),
            "loss_start": float(first["loss"]), "loss_end": float(np.mean([float(r["loss"]) for r in tail])),
            "code_loss_start": float(first["code_loss"]),
            "code_loss_end": float(np.mean([float(r["code_loss"]) for r in tail])),
            "tokens_per_s": round(float(np.median([float(r["tokens_per_s"]) for r in tail])), 1)}


def _latest_checkpoint(demo):
    ckpts = sorted(glob.glob(demo.path("train", "checkpoint", "rank_0", "step_*.ckpt")))
    if not ckpts:
        raise FileNotFoundError(f"no training checkpoint under {demo.path('train', 'checkpoint', 'rank_0')}")
    return ckpts[-1]


def export(demo):
    """Training checkpoint -> MindSpore layout -> HF PyTorch layout (with pytorch_model.bin)."""
    model_dir, hf_dir = demo.path("model"), demo.path("hf")
    demo.run_command("export_ms", demo.cli("convert", "--to", "mindspore", _latest_checkpoint(demo), model_dir,
                                           "--config", demo.path("train"), "--tokenizer", demo.path("tokenizer"),
                                           "--overwrite"))
    demo.run_command("export_hf", demo.cli("convert", "--to", "hf", model_dir, hf_dir, "--bin", "--overwrite"))
    return {"mindspore": os.path.relpath(model_dir, demo.workdir), "hf": os.path.relpath(hf_dir, demo.workdir)}


def _parse_rate(samples_path):
    total = ok = 0
    with open(samples_path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            total += 1
            try:
                ast.parse(row["prompt"] + row["completion"])
                ok += 1
            except (SyntaxError, ValueError, MemoryError, RecursionError):  # generated code: deep nesting overflows
                pass
    return ok / total if total else math.nan


def _evaluate(demo, dataset, extra=()):
    out = demo.path("eval", dataset)
    argv = [sys.executable, os.path.join(ROOT, "eval.py"), "--device_target", "CPU", "--model", demo.path("model"),
            "--dataset", dataset, "--greedy", "--out", out, "--workers", 2, "--resume", *extra]
    if demo.args.eval_limit:
        argv += ["--limit", demo.args.eval_limit]
    demo.run_command(f"eval_{dataset}", [str(a) for a in argv])
    summary = _load_json(os.path.join(out, "summary.json"))
    metrics = summary.get("metrics", summary)
    pass1 = metrics.get("pass@1")
    return {f"{dataset}_pass@1": pass1, f"{dataset}_parse_rate": round(_parse_rate(os.path.join(out,
                                                                                              "samples.jsonl")), 4)}


def evaluate(demo):
    result = _evaluate(demo, "humaneval")
    mbpp = _mbpp_path(demo)
    if mbpp:
        result.update(_evaluate(demo, "mbpp", ["--mbpp-path", mbpp]))
    else:
        result["mbpp"] = "skipped (no MBPP data; pass --mbpp-path)"
    return result


def parity(demo):
    """The exported PyTorch module's logits equal MindSpore's on a batch of training rows."""
    demo.run_command("parity", [sys.executable, "-m", "pangu_codeclm.demo_stages", "parity", demo.path("model"),
                                demo.path("hf"), demo.path("parity.json")])
    return _load_json(demo.path("parity.json"))


def losses(demo):
    """All-token and code-token loss of the initial and the trained model on the same training rows."""
    demo.run_command("losses", [sys.executable, "-m", "pangu_codeclm.demo_stages", "losses", demo.path("model"),
                                demo.path("data"), demo.path("losses.json")])
    return _load_json(demo.path("losses.json"))


def measure_losses(model_dir, data_dir, out_path, rows=16, seed=1234):
    """Loss over all tokens and over code tokens, at initialisation (the training seed) and after training."""
    import mindspore as ms

    from . import from_pretrained
    from .api import PanguCodeCLM
    from .data.mindrecord import create_dataset
    from .io_utils import atomic_write_json
    from .model.pangu import PanguCodeCLMForCausalLM
    from .sample_format import IGNORE_INDEX

    trained = from_pretrained(model_dir)
    ms.set_seed(seed)
    initial = PanguCodeCLM(trained.config, PanguCodeCLMForCausalLM(trained.config, trained.separation_map),
                           trained.separation_map)
    batch = next(create_dataset(data_dir, batch_size=rows, shuffle=False, drop_remainder=False)
                 .create_tuple_iterator(output_numpy=True))
    ids, labels, positions, mask, docstr = batch
    all_labels = np.where(ids != trained.config.pad_token_id, ids, IGNORE_INDEX)
    result = {}
    for when, model in (("start", initial), ("end", trained)):
        result[f"loss_all_{when}"] = round(model.loss(ids, all_labels, mask, positions, docstr), 4)
        result[f"loss_code_{when}"] = round(model.loss(ids, labels, mask, positions, docstr), 4)
    atomic_write_json(out_path, result)
    print(json.dumps(result))


def check_parity(model_dir, hf_dir, out_path, batch=2, length=64, tolerance=1e-4):
    """Compare logits of the MindSpore model and the exported torch module on the same left-padded batch."""
    import torch

    from . import from_pretrained
    from .convert.torch_model import TorchPanguCodeCLM, padded_position_ids
    from .io_utils import atomic_write_json

    ms_model = from_pretrained(model_dir)
    torch_model = TorchPanguCodeCLM.from_pretrained(hf_dir).eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, ms_model.config.vocab_size, size=(batch, length)).astype(np.int32)
    mask = np.ones((batch, length), dtype=np.int32)
    mask[1, : length // 4] = 0
    positions = padded_position_ids(torch.from_numpy(mask)).numpy().astype(np.int32)
    ms_logits = ms_model.logits(ids, attention_mask=mask, position_ids=positions)
    with torch.no_grad():
        pt_logits = torch_model(torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask),
                                position_ids=torch.from_numpy(positions).long()).numpy()
    keep = mask.astype(bool)
    diff = float(np.abs(ms_logits[keep] - pt_logits[keep]).max())
    result = {"max_abs_diff": diff, "tolerance": tolerance, "equal": diff <= tolerance}
    atomic_write_json(out_path, result)
    print(json.dumps(result))
    if diff > tolerance:
        raise SystemExit(f"logits differ by {diff:.3g} > {tolerance}")


STAGES = (("mine", mine), ("tokenizer", tokenizer), ("prepare", prepare), ("train", train), ("export", export),
          ("losses", losses), ("evaluate", evaluate), ("parity", parity))


def results_table(demo):
    """Markdown table of every stage's wall time and summary, written to results.md and printed."""
    lines = ["| stage | wall time (s) | summary |", "|---|---|---|"]
    for name, record in demo.results.items():
        lines.append(f"| {name} | {record['seconds']:.0f} | {record['summary_line']} |")
    lines += ["", "Artifacts:", f"- records: {demo.path('pairs.jsonl')}", f"- tokenizer: {demo.path('tokenizer')}",
              f"- MindRecord shards: {demo.path('data')}",
              f"- training (metrics.csv, loss_curve.png, checkpoints): {demo.path('train')}",
              f"- MindSpore model: {demo.path('model')}", f"- HF PyTorch export: {demo.path('hf')}",
              f"- evaluation: {demo.path('eval')}", f"- logs: {demo.log_dir}"]
    text = "\n".join(lines) + "\n"
    from .io_utils import atomic_write_text
    atomic_write_text(demo.path("results.md"), text)
    print(text)


def run_all(demo):
    for name, func in STAGES:
        demo.stage(name, lambda func=func: func(demo))
    results_table(demo)


if __name__ == "__main__":
    commands = {"parity": check_parity, "losses": measure_losses}
    if len(sys.argv) == 5 and sys.argv[1] in commands:
        commands[sys.argv[1]](*sys.argv[2:])
    else:
        raise SystemExit("usage: python -m pangu_codeclm.demo_stages parity MODEL_DIR HF_DIR OUT_JSON\n"
                         "       python -m pangu_codeclm.demo_stages losses MODEL_DIR DATA_DIR OUT_JSON")
