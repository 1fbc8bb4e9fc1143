"""The demo end to end on a tiny input: every stage runs, the model learns, the export matches MindSpore."""
import json
import subprocess
import sys
import sysconfig

from conftest import ROOT

STDLIB = sysconfig.get_paths()["stdlib"]


def test_demo_runs_every_stage_on_a_tiny_input(tmp_path):
    work = tmp_path / "demo"
    argv = [sys.executable, "-m", "pangu_codeclm.cli", "demo", "--workdir", str(work), "--minutes", "0.3",
            "--eval-limit", "3", "--vocab-size", "1000", "--seq-length", "128"]
    for package in ("json", "email", "http", "asyncio"):
        argv += ["--mine-source", f"{STDLIB}/{package}"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = {p.stem: json.loads(p.read_text())["summary"] for p in (work / "state").glob("*.json")}
    assert set(state) == {"mine", "tokenizer", "prepare", "train", "export", "losses", "evaluate", "parity"}
    assert state["mine"]["pairs_kept"] > 300 and "humaneval" in state["mine"]["benchmarks"]
    assert state["tokenizer"]["separation"] == "full" and state["tokenizer"]["map_entries"] > 0
    assert state["train"]["steps"] >= 20
    assert state["losses"]["loss_code_end"] < state["losses"]["loss_code_start"] - 1.0
    assert state["parity"]["equal"] and state["parity"]["max_abs_diff"] <= 1e-4
    assert 0.0 <= state["evaluate"]["humaneval_parse_rate"] <= 1.0
    summary = json.loads((work / "eval" / "humaneval" / "summary.json").read_text())
    assert summary["metrics"]["tasks"] == 3
    for artifact in ("train/loss_curve.png", "model/pangu_codeclm.json", "hf/config.json", "hf/pytorch_model.bin",
                     "results.md"):
        assert (work / artifact).is_file(), artifact
    assert "| parity |" in proc.stdout
    # a second run resumes every stage instead of redoing it
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and again.stdout.count("done earlier") == 8
