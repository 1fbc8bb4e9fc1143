"""`pangu-codeclm grid` end to end on a tiny 2x2 grid: the dry-run plan, a kill inside a cell and the resume (the
finished cell skipped, the half-trained one continued from its checkpoint), a failing cell reported with its log while
the others go on, the results files, and every cell's seed, data order and step count equal from its metadata."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from hang import hang_env

from pangu_codeclm.grid import GridError, parse_cells

CELLS = "corrupt_code:none,corrupt_code:full,prefix_code:none,prefix_code:full"
ORDER = ["corrupt_code-none", "corrupt_code-full", "prefix_code-none", "prefix_code-full"]
STEPS, SAVE, HANG = 4, 2, 2
SEQ = 64


def test_parse_cells_order_and_errors():
    assert [c.name for c in parse_cells(CELLS)] == ORDER
    assert len(parse_cells("all")) == 12 and [c.name for c in parse_cells("*:partial")] == [
        "text_code-partial", "code-partial", "corrupt_code-partial", "prefix_code-partial"]
    with pytest.raises(GridError, match="'code:half'.*separation must be one of"):
        parse_cells("code:half")
    with pytest.raises(GridError, match="expected OBJECTIVE:SEPARATION"):
        parse_cells("code")


def _records(path, n=48):
    ops = ["+", "-", "*", "//", "%"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            op = ops[i % len(ops)]
            code = f"def f{i}(a, b): <NEW_LINE> <INDENT> return a {op} b + {i} <NEW_LINE> <DEDENT>"
            f.write(json.dumps({"_id": str(i), "docstring": f"Combine a and b with {op} and add {i}.",
                                "code": code}) + "\n")


@pytest.fixture(scope="module")
def grid_inputs(tmp_path_factory, pangu_vocab_model):
    """A tiny random init (released vocab, hidden 32), a records file and a base yaml, written here."""
    import yaml

    from pangu_codeclm.config import PanguCodeCLMConfig
    from pangu_codeclm.checkpoints.mindspore_dir import write_mindspore
    from pangu_codeclm.families import family_for
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    base = tmp_path_factory.mktemp("grid_inputs")
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, "none")
    config = PanguCodeCLMConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                                ffn_hidden_size=64, max_position_embeddings=512, seq_length=SEQ,
                                separation="none", pad_token_id=tok.pad_id, eos_token_id=tok.eot_id)
    write_mindspore(base / "init", config, family_for(config).random_weights(config, seed=5), {}, tok)
    _records(base / "pairs.jsonl")
    with open(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml", encoding="utf-8") as f:
        tree = yaml.safe_load(f)
    tree["runner_config"]["batch_size"] = 2
    tree["model"]["model_config"].update(batch_size=2, seq_length=SEQ)
    tree["pangu"].update(save_steps=SAVE, keep_checkpoints=2, log_steps=1, eval_steps=2, plot_steps=100)
    (base / "tiny.yaml").write_text(yaml.safe_dump(tree), encoding="utf-8")
    return base


def _grid_argv(inputs, out, *extra):
    return [sys.executable, "-m", "pangu_codeclm.cli", "grid", "--init", str(inputs / "init"), "--records",
            str(inputs / "pairs.jsonl"), "--config", str(inputs / "tiny.yaml"), "--cells", CELLS, "--out", str(out),
            "--steps", str(STEPS), "--datasets", "humaneval", "--eval-limit", "1", "--max-new-tokens", "6",
            "--eval-workers", "1", "--prepare-workers", "1", *extra]


def _run(argv, **kw):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
                          env={**os.environ, "GLOG_v": "3"}, **kw)


def test_grid_plans_resumes_reports_a_failure_and_keeps_cells_comparable(grid_inputs, tmp_path):
    from pangu_codeclm.train.callbacks import read_metrics
    out = tmp_path / "grid"
    # --dry-run: the data and a timed calibration run, no cell trained
    dry = _run(_grid_argv(grid_inputs, out, "--dry-run", "--calibration-steps", "3"))
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["cells"] == ORDER and plan["steps"] == STEPS and plan["step_s"] > 0
    # train_s_total is rounded to 0.1 s and step_s to 1e-4 s in plan.json
    assert plan["train_s_total"] == pytest.approx(plan["step_s"] * STEPS * 4, rel=1e-2, abs=0.05 + 4e-4 * STEPS)
    assert plan["disk_bytes"]["total"] > plan["disk_bytes"]["data"] > 0
    assert plan["disk_bytes"]["per_cell"] > 0 and "4 cells" in dry.stdout and "s/step" in dry.stdout
    assert not (out / "cells").exists() and not (out / "calibration").exists()
    # corrupt_code's rows are code's rows (linked), with its own meta
    code_meta = json.loads((out / "data" / "full" / "code" / "meta.json").read_text())
    corrupt_meta = json.loads((out / "data" / "full" / "corrupt_code" / "meta.json").read_text())
    assert corrupt_meta["objective"] == "corrupt_code" and corrupt_meta["corruption"]["mask_id"] >= 0
    assert corrupt_meta["rows"] == code_meta["rows"] and corrupt_meta["rows_shared_with"] == "code"

    # run 1: killed (with its training child) inside the second cell, after its step-HANG checkpoint
    proc = subprocess.Popen(_grid_argv(grid_inputs, out), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "GLOG_v": "3", **hang_env(HANG, os.path.join("cells", ORDER[1], ""))})
    meta = out / "cells" / ORDER[1] / "train" / "checkpoint" / "rank_0" / f"step_{HANG:08d}.json"
    deadline = time.time() + 600
    while not meta.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert meta.exists(), "the second cell never wrote its step checkpoint"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert (out / "cells" / ORDER[0] / "cell.json").is_file() and not (out / "cells" / ORDER[1] / "cell.json").exists()

    # a stale checkpoint from another run (saved for 999 steps) makes the third cell fail
    stale = out / "cells" / ORDER[2] / "train" / "checkpoint" / "rank_0"
    stale.mkdir(parents=True)
    (stale / "step_00000001.ckpt").write_bytes(b"x")
    good = json.loads(meta.read_text())
    from pangu_codeclm.io_utils import file_sha256
    (stale / "step_00000001.json").write_text(json.dumps(dict(
        good, step=1, ckpt="step_00000001.ckpt", total_steps=999, data_position=2, size=1,
        sha256=file_sha256(stale / "step_00000001.ckpt"))))

    # run 2: the first cell is skipped, the second resumes, the third fails with its log, the fourth runs
    again = _run(_grid_argv(grid_inputs, out))
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    status = {r["cell"]: r["status"] for r in results["rows"]}
    assert status == {ORDER[0]: "done", ORDER[1]: "resumed", ORDER[2]: "failed", ORDER[3]: "done"}
    failure = results["failures"][ORDER[2]]
    assert "stage 'train' failed" in failure and str(out / "cells" / ORDER[2] / "logs" / "train.log") in failure
    assert "999 steps" in failure and "stage 'train_retry1' failed" in failure  # retried once, then reported
    assert again.stdout.count("done earlier") >= 3  # the first cell's train, export, evaluate
    resumed_log = (out / "cells" / ORDER[1] / "logs" / "train.log").read_text()
    assert f"step {HANG}" in resumed_log and "restored weights" in resumed_log

    # run 3: the stale checkpoint removed, the failed cell runs; every cell is done
    import shutil
    shutil.rmtree(out / "cells" / ORDER[2] / "train")
    last = _run(_grid_argv(grid_inputs, out))
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [r["cell"] for r in results["rows"]] == ORDER and not results["failures"]

    # the same seed, data, data order, steps and schedule in every cell, from each cell's own metadata
    cells = [json.loads((out / "cells" / name / "cell.json").read_text()) for name in ORDER]
    for key in ("settings", "steps", "rows", "data_order_sha256", "init", "config"):
        assert len({json.dumps(c[key], sort_keys=True) for c in cells}) == 1, key
    assert len({c["data"]["fingerprint"] for c in cells}) == 1  # same samples, same order, any separation
    assert len({c["data"]["records_sha256"] for c in cells}) == 1
    for c in cells:
        rows = read_metrics(out / "cells" / c["cell"] / "train" / "metrics.csv")
        assert [r["step"] for r in rows] == list(range(1, STEPS + 1)), c["cell"]
        assert c["train"]["steps"] == c["train"]["total_steps"] == STEPS
        assert c["train"]["data_position"] == STEPS * c["settings"]["global_batch"]
        assert c["train"]["val_code_loss"] > 0 and c["train"]["step_s"] > 0
        ev = c["evaluation"]
        assert ev["humaneval_greedy"]["tasks"] == 1 and 0 <= ev["humaneval_greedy"]["pass@1"] <= 1
        assert ev["humaneval_incremental"]["problems"] == 1 and ev["humaneval_incremental"]["tasks"] > 1
        assert any("train.py" in cmd and f"model.model_config.objective={c['objective']}" in cmd
                   for cmd in c["reproduce"])
    assert cells[0]["settings"]["global_batch"] == 2 and cells[0]["settings"]["seed"] == 1234
    text = (out / "results.md").read_text()
    assert "| Corrupt Code CLM | full |" in text and "HumanEval incr. micro pass@1" in text
    assert "## Reproduce a cell" in text and (out / "results.png").stat().st_size > 1000
    assert last.stdout.count("done earlier") >= 9  # three finished cells skipped entirely


def test_demo_grid_runs_mine_tokenizer_init_then_the_grid(tmp_path, monkeypatch):
    import argparse

    from pangu_codeclm import demo_stages, grid
    from pangu_codeclm.commands import demo as demo_cmd
    from pangu_codeclm.demo import Demo
    parser = argparse.ArgumentParser()
    demo_cmd.add_arguments(parser)
    runner = Demo(parser.parse_args(["--workdir", str(tmp_path), "--grid", "--grid-steps", "7"]))
    commands = {}

    def run_command(name, argv, budget_s=None):
        assert all(isinstance(a, str) for a in argv), argv  # the log line joins them
        commands[name] = argv
        if name == "grid_init":
            (tmp_path / "grid_init").mkdir()
            (tmp_path / "grid_init" / "init.json").write_text('{"vocab_size": 9}')
        if name == "grid":
            (tmp_path / "grid").mkdir()
            (tmp_path / "grid" / "results.json").write_text('{"rows": [{"status": "done"}, {"status": "failed"}]}')

    monkeypatch.setattr(runner, "run_command", run_command)
    monkeypatch.setattr(demo_stages, "mine", lambda d: {"pairs_kept": 1})
    monkeypatch.setattr(demo_stages, "tokenizer", lambda d: {"vocab_size": 9})
    grid.run_demo_grid(runner)
    argv = commands["grid"]
    assert argv[argv.index("grid") + 1:argv.index("grid") + 3] == ["--init", str(tmp_path / "grid_init")]
    assert argv[argv.index("--steps") + 1] == "7" and argv[argv.index("--eval-limit") + 1] == str(grid.DEMO_EVAL_LIMIT)
    assert runner.results["grid"]["summary"] == {"cells": 2, "done": 1}
