"""Capacity planner: exact parameter counts, layout effects on memory/communication, verdicts and errors."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from pangu_codeclm.config import PanguCodeCLMConfig
from pangu_codeclm.train.plan import GIB, parameter_counts, plan

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_parameter_count_equals_the_network(ms_cpu):
    from pangu_codeclm.model.pangu import PanguCodeCLMForCausalLM
    cfg = PanguCodeCLMConfig.preset("tiny", vocab_size=300, num_layers=2, hidden_size=32, ffn_hidden_size=64,
                                    max_position_embeddings=16, seq_length=16)
    net = PanguCodeCLMForCausalLM(cfg)
    counted = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    emb, block, top, ln_f = parameter_counts(cfg)
    assert emb + cfg.num_layers * block + top + ln_f == counted


def test_released_300m_size():
    r = plan(PanguCodeCLMConfig.preset("300m", batch_size=64, parallel={"data_parallel": 8}), 8, 8)
    assert 340e6 < r["total_params"] < 360e6          # "300m": 24 blocks + top query layer + 32013-row embedding
    assert r["weights"] == pytest.approx(4 * r["total_params"])
    assert r["optimizer"] == pytest.approx(8 * r["total_params"])
    assert r["global_batch"] == 64


def _cfg(**par):
    return PanguCodeCLMConfig.preset("300m", compute_dtype="float16", batch_size=64,
                                     parallel={"data_parallel": 8, **par})


def test_layout_effects():
    base = plan(_cfg(), 8, 8)
    shard = plan(_cfg(optimizer_shard=True), 8, 8)
    assert shard["optimizer"] == pytest.approx(base["optimizer"] / 8)
    assert shard["weights"] == pytest.approx(base["weights"] / 8)
    assert base["activations_recompute"] < base["activations"] / 5
    assert base["comm_dp"] == pytest.approx(2 * 7 / 8 * base["grads"])   # ring all-reduce of fp32 gradients
    assert base["comm_mp"] == 0 and base["comm_pp"] == 0
    mp = plan(PanguCodeCLMConfig.preset("300m", compute_dtype="float16", batch_size=64,
                                        parallel={"data_parallel": 4, "model_parallel": 2}), 8, 16)
    assert mp["comm_mp"] > 0 and mp["params_per_device"] < base["params_per_device"]
    assert base["fits_with_recompute"] and not base["fits_without_recompute"]
    assert base["total_recompute"] < 32 * GIB * 0.9 < base["total"]


def test_inconsistent_layout_is_refused():
    from pangu_codeclm.config import ConfigError
    with pytest.raises(ConfigError, match="data_parallel\\*model_parallel\\*pipeline_stage = 8 but 16 devices"):
        plan(_cfg(), 16, 8)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pangu_codeclm.cli", "plan", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_on_the_paper_config_and_presets():
    proc = _cli("--config", str(ROOT / "configs" / "pangu_codeclm_300m_none.yaml"), "--devices", "8")
    assert proc.returncode == 0, proc.stderr
    assert "8 devices = dp 8 x mp 1 x pp 1" in proc.stdout and "global batch 64 x 1024" in proc.stdout
    assert "FITS with recompute on" in proc.stdout
    proc = _cli("--config", "13b", "--devices", "8", "--recompute", "off")
    assert proc.returncode == 1 and "DOES NOT FIT" in proc.stdout
    proc = _cli("--config", str(ROOT / "configs" / "pangu_codeclm_300m_none.yaml"), "--devices", "16")
    assert proc.returncode == 2 and "16 devices are used" in proc.stderr
