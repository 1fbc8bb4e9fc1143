"""Data parallelism on CPU: every rank reads its own shard of each global batch, and 2 msrun workers end with the weights
of one process trained on the same global batches."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from test_train import ROOT, TINY, SEQ, VOCAB, tiny_args, run_train

STEPS = 3
PER_RANK = 2


def test_rank_shards_are_disjoint_and_cover_the_global_batch():
    from pangu_codeclm.train.dataset import rank_epoch_chunks, rank_indices
    single = rank_indices(10, steps=7, batch_size=4, seed=5)
    r0 = rank_indices(10, steps=7, batch_size=2, rank_id=0, rank_size=2, seed=5)
    r1 = rank_indices(10, steps=7, batch_size=2, rank_id=1, rank_size=2, seed=5)
    assert len(single) == 28 and len(r0) == len(r1) == 14
    for step in range(7):
        a, b = r0[2 * step:2 * step + 2], r1[2 * step:2 * step + 2]
        assert sorted(a + b) == sorted(single[4 * step:4 * step + 4])
    # each epoch is a permutation: 10 rows, 28 samples -> epochs of 10, 10, 8 with no row repeated inside one
    for chunk in rank_epoch_chunks(10, 7, 4, seed=5):
        assert len(set(chunk)) == len(chunk)
    assert sorted(single[:10]) == list(range(10))
    # resuming at step 3 starts exactly where the uninterrupted stream is
    assert rank_indices(10, 7, 2, 1, 2, start_step=3, seed=5) == r1[6:]
    with pytest.raises(ValueError, match="rank_id 2 is outside"):
        rank_indices(10, 7, 2, rank_id=2, rank_size=2)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _final(out, rank):
    import mindspore as ms
    path = out / "checkpoint" / f"rank_{rank}" / f"step_{STEPS:08d}.ckpt"
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


def test_msrun_two_workers_match_one_process(tmp_path):
    from pangu_codeclm.train.callbacks import read_metrics
    from pangu_codeclm.train.synthetic import write_synthetic_dataset
    data = tmp_path / "rows"
    write_synthetic_dataset(data, num_rows=16, seq_length=SEQ, vocab_size=VOCAB, seed=9)

    ref_out = tmp_path / "single"
    run_train(tiny_args(data, ref_out, steps=STEPS, extra=["--set", f"runner_config.batch_size={2 * PER_RANK}"]))

    dp_out = tmp_path / "dp"
    train_flags = tiny_args(data, dp_out, steps=STEPS, extra=["--set", f"runner_config.batch_size={PER_RANK}"])[2:]
    train_flags = [f for f in train_flags if f != "--config" and f != str(TINY)]
    # An environment that is not activated: neither this Python's bin dir nor any msrun is on PATH; the launcher must
    # run msrun and every worker with exactly the Python it is given.
    tools = tmp_path / "tools"  # the shell tools the launcher uses, with no python or msrun beside them
    tools.mkdir()
    for tool in ("dirname", "mkdir", "mktemp", "chmod", "rm", "sed"):
        os.symlink(shutil.which(tool), tools / tool)
    py_bin = os.path.realpath(os.path.dirname(sys.executable))
    path = os.pathsep.join([str(tools)] + [d for d in ("/usr/bin", "/bin") if os.path.realpath(d) != py_bin])
    env = {**os.environ, "GLOG_v": "3", "PYTHON": sys.executable, "PATH": path}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "run_msrun_train.sh"), str(TINY), "2", "2", "127.0.0.1",
                           str(_free_port()), "0", "--", *train_flags],
                          capture_output=True, text=True, env=env, timeout=900)
    logs = "".join(p.read_text(errors="replace")[-2000:] for p in (dp_out / "msrun_log").glob("worker_*.log"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    worker_logs = sorted((dp_out / "msrun_log").glob("worker_*.log"))
    assert len(worker_logs) == 2
    for log in worker_logs:
        assert f"interpreter {sys.executable}\n" in log.read_text(errors="replace"), log

    ref = read_metrics(ref_out / "metrics.csv")
    r0 = read_metrics(dp_out / "metrics.csv")
    r1 = read_metrics(dp_out / "metrics_rank1.csv")
    assert [r["step"] for r in r0] == [r["step"] for r in r1] == list(range(1, STEPS + 1))
    for a, b, c in zip(r0, r1, ref):
        assert a["loss"] != b["loss"]                                  # different shards
        assert (a["loss"] + b["loss"]) / 2 == pytest.approx(c["loss"], abs=1e-5)  # together: the global batch
        assert a["grad_norm"] == pytest.approx(c["grad_norm"], rel=1e-4)         # all-reduced gradients

    w0, w1, wref = _final(dp_out, 0), _final(dp_out, 1), _final(ref_out, 0)
    assert w0.keys() == w1.keys() == wref.keys()
    for name in wref:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
        np.testing.assert_allclose(w0[name], wref[name], rtol=0, atol=1e-5, err_msg=name)
