"""Training through the mindformers Trainer on CPU: a tiny run learns, writes metrics/PNG/checkpoints, and a run killed
with SIGKILL resumes to exactly the uninterrupted run's losses and weights."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hang import hang_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml"
VOCAB, SEQ, BATCH = 96, 32, 2
STEPS, SAVE = 8, 4   # 2N steps, checkpoint every N


def tiny_args(data_dir, out_dir, steps=STEPS, extra=()):
    """train.py command line for the tiny config made tinier (hidden 32, 2 blocks, T=32)."""
    return [sys.executable, str(ROOT / "train.py"), "--config", str(TINY), "--device_target", "CPU",
            "--output_dir", str(out_dir), "--train_dataset_dir", str(data_dir),
            "--set", f"pangu.train_steps={steps}", "--set", f"pangu.save_steps={SAVE}", "--set", "pangu.log_steps=1",
            "--set", "pangu.plot_steps=4", "--set", "pangu.keep_checkpoints=2", "--set", "pangu.show_bar=false",
            "--set", "pangu.eval_steps=4",
            "--set", f"model.model_config.vocab_size={VOCAB}", "--set", "model.model_config.hidden_size=32",
            "--set", "model.model_config.ffn_hidden_size=64", "--set", f"model.model_config.seq_length={SEQ}",
            "--set", f"model.model_config.max_position_embeddings={SEQ}", "--set", f"runner_config.batch_size={BATCH}",
            "--set", "lr_schedule.learning_rate=0.005", *extra]


def run_train(args, env=None, check=True):
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "GLOG_v": "3", **(env or {})},
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from pangu_codeclm.train.synthetic import write_synthetic_dataset
    out = tmp_path_factory.mktemp("data") / "rows"
    write_synthetic_dataset(out, num_rows=12, seq_length=SEQ, vocab_size=VOCAB, seed=3)
    return out


@pytest.fixture(scope="module")
def full_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    proc = run_train(tiny_args(tiny_data, out))
    return out, proc


def _ckpt_params(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


def test_tiny_run_learns_and_writes_outputs(full_run):
    from pangu_codeclm.train.callbacks import read_metrics
    out, proc = full_run
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    losses = np.array([r["loss"] for r in rows])
    assert np.all(np.isfinite(losses))
    assert losses[0] == pytest.approx(np.log(VOCAB), rel=0.1)  # random init: about uniform over the vocabulary
    assert losses[-2:].mean() < losses[:2].mean() - 0.1        # 12 rows seen repeatedly: the loss falls
    lrs = [r["lr"] for r in rows]
    from pangu_codeclm.train.lr import lr_values
    np.testing.assert_allclose(lrs, lr_values(0.005, STEPS, 0.01, 1e-4)[:STEPS], rtol=1e-6)  # step 1 runs at lr 0
    val = [r["val_code_loss"] for r in rows]                  # 1 of 12 rows held out, evaluated every 4 steps
    assert np.isfinite(val[3]) and np.isfinite(val[7]) and np.isnan(val[:3]).all() and np.isnan(val[4:7]).all()
    assert abs(val[3] - np.log(VOCAB)) < 1.5 and val[7] < val[3] + 0.5
    assert all(r["grad_norm"] > 0 and r["overflow"] == 0 and r["loss_scale"] == 1 for r in rows)
    assert all(r["code_loss"] == r["loss"] for r in rows)     # Code CLM: the loss is the code-token loss
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpts = sorted(p.name for p in (out / "checkpoint" / "rank_0").iterdir())
    assert ckpts == ["step_00000004.ckpt", "step_00000004.json", "step_00000008.ckpt", "step_00000008.json"]
    params = _ckpt_params(out / "checkpoint" / "rank_0" / "step_00000008.ckpt")
    assert int(params["global_step"].reshape(-1)[0]) == STEPS
    assert "adam_m.transformer.wte.weight" in params and "adam_v.transformer.wte.weight" in params
    log = proc.stdout + proc.stderr
    assert f"step {STEPS}/{STEPS} loss" in log
    n_params = sum(1 for k in params if k.startswith("adam_m."))   # AdamW keeps one moment per trainable parameter
    # the Trainer built our optimizer: the reference's LR schedule and weight decay on every parameter
    assert (f"optimizer AdamW, lr FlooredCosineWithWarmUpLR: weight decay 0.01 on {n_params} of {n_params} "
            f"parameters (pangu.weight_decay_params: all)") in log


def test_run_config_lets_convert_export_the_checkpoint(full_run, tmp_path):
    from pangu_codeclm.checkpoints import read_checkpoint
    from pangu_codeclm.convert.convert import convert
    out, _ = full_run
    model_dir = tmp_path / "model"
    convert(str(out / "checkpoint" / "rank_0" / "step_00000008.ckpt"), str(model_dir), "mindspore", config=str(out))
    exported = read_checkpoint(str(model_dir))
    params = _ckpt_params(out / "checkpoint" / "rank_0" / "step_00000008.ckpt")
    wte = exported.weights["transformer.wte.weight"]
    assert exported.config.vocab_size == VOCAB and wte.shape[0] == VOCAB
    np.testing.assert_array_equal(wte, params["transformer.wte.weight"])


def test_kill9_then_resume_matches_uninterrupted_run(full_run, tiny_data, tmp_path):
    from pangu_codeclm.train.callbacks import read_metrics
    ref_out, _ = full_run
    out = tmp_path / "killed"
    proc = subprocess.Popen(tiny_args(tiny_data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GLOG_v": "3", **hang_env(SAVE)})
    meta = out / "checkpoint" / "rank_0" / f"step_{SAVE:08d}.json"
    deadline = time.time() + 300
    while not meta.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert meta.exists(), "the first run never wrote its step-N checkpoint"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == list(range(1, SAVE + 1))

    run_train(tiny_args(tiny_data, out, extra=["--resume"]))
    ref = read_metrics(ref_out / "metrics.csv")
    got = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    for a, b in zip(ref[SAVE:], got[SAVE:]):
        assert abs(a["loss"] - b["loss"]) <= 1e-6, (a["step"], a["loss"], b["loss"])
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-6)
    final_ref = _ckpt_params(ref_out / "checkpoint" / "rank_0" / "step_00000008.ckpt")
    final_got = _ckpt_params(out / "checkpoint" / "rank_0" / "step_00000008.ckpt")
    assert final_ref.keys() == final_got.keys()
    for name in final_ref:
        np.testing.assert_array_equal(final_ref[name], final_got[name], err_msg=name)


def test_resume_skips_a_corrupt_newest_checkpoint(full_run, tmp_path, caplog):
    import shutil
    from pangu_codeclm.train import checkpoint as ck
    src = full_run[0] / "checkpoint" / "rank_0"
    d = tmp_path / "ck"
    shutil.copytree(src, d)
    newest = d / "step_00000008.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])           # truncated
    stray = d / "step_00000012.ckpt"
    stray.write_bytes(b"half written")                       # no metadata: killed while saving
    with caplog.at_level("WARNING"):
        info = ck.find_resume_checkpoint(str(d))
    assert info["step"] == 4 and info["ckpt_path"].endswith("step_00000004.ckpt")
    text = caplog.text
    assert "step_00000008.ckpt: truncated or altered" in text and str(stray) in text
    # a flipped byte with the right size is caught by the hash
    good = d / "step_00000004.ckpt"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    good.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert ck.find_resume_checkpoint(str(d)) is None
    assert "step_00000004.ckpt: corrupt (SHA-256" in caplog.text


def test_keep_last_k_and_metadata(tmp_path, ms_cpu):
    from mindspore import nn
    from pangu_codeclm.train import checkpoint as ck
    net = nn.Dense(3, 2)
    for step in (2, 4, 6, 8):
        ck.save_checkpoint(net, str(tmp_path), step, extra={"data_position": step * 5}, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["step_00000006.ckpt", "step_00000006.json", "step_00000008.ckpt",
                                            "step_00000008.json"]
    info = ck.verify(str(tmp_path / "step_00000008.json"))
    assert info["data_position"] == 40 and info["step"] == 8 and set(info["rng"]) == {"python", "numpy", "mindspore"}
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_rng_state_round_trip():
    import random
    from pangu_codeclm.train import checkpoint as ck
    state = ck.capture_rng_state()
    a = (random.random(), np.random.rand())
    ck.restore_rng_state(state)
    assert (random.random(), np.random.rand()) == a


def test_ranks_resume_from_a_step_intact_on_all_of_them(full_run, tmp_path, caplog):
    import shutil
    from pangu_codeclm.train import checkpoint as ck
    src = full_run[0] / "checkpoint" / "rank_0"
    r0, r1 = tmp_path / "rank_0", tmp_path / "rank_1"
    shutil.copytree(src, r0)
    shutil.copytree(src, r1)
    (r1 / "step_00000008.json").unlink()        # rank 1 was killed while saving step 8
    with caplog.at_level("WARNING"):
        info = ck.find_resume_checkpoint(str(r0), peers=[str(r1)])
    assert info["step"] == 4
    assert f"skipping checkpoint at step 8: not intact in {r1}" in caplog.text
