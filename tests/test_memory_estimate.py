"""The generation memory estimate (infer/memory.py) and `evaluate`'s up-front refusal of a batch that will not fit."""
import math

import numpy as np
import pytest

from pangu_codeclm.config import PanguCodeCLMConfig
from pangu_codeclm.checkpoints.files import SAFETENSORS
from pangu_codeclm.checkpoints.hf import write_hf
from pangu_codeclm.families import family_for
from pangu_codeclm.infer import memory


def _tiny(**overrides):
    values = dict(vocab_size=1000, hidden_size=32, num_layers=2, num_heads=4, ffn_hidden_size=64,
                  max_position_embeddings=256, seq_length=256)
    values.update(overrides)
    return PanguCodeCLMConfig.preset("tiny", **values)


def test_weights_are_every_checkpoint_parameter_in_fp32():
    config = _tiny()
    count = sum(math.prod(shape) for shape in family_for(config).shapes(config).values())
    assert memory.parameter_total(config) == count
    assert memory.estimate(config, 1, 256)["weights"] == 4 * count


def test_kv_cache_is_batch_layers_kv_heads_length_head_dim_fp32():
    config = _tiny()
    e = memory.estimate(config, 3, 200)  # 200 tokens -> cache bucket 256
    assert e["cache_length"] == 256
    assert e["kv_cache"] == 3 * (2 + 1) * 2 * 4 * 256 * 8 * 4
    assert memory.cache_length(config, 5000) == 256  # capped by the positions


def test_estimate_is_affine_in_the_batch_plus_the_decode_writes():
    config = _tiny()
    one, eight = memory.estimate(config, 1, 256), memory.estimate(config, 8, 256)
    write = (2 + 1) * 2 * 4 * 8 * 4  # cached layers x (K, V) x heads x head_dim x fp32, per batch row squared
    assert (one["decode_writes"], eight["decode_writes"]) == (write, 64 * write)
    assert eight["total"] - one["total"] == 7 * one["per_row"] + 63 * write
    assert one["total"] == one["fixed"] + one["per_row"] + write
    assert eight["total"] == eight["weights"] + eight["kv_cache"] + eight["working"]


def test_largest_batch_is_the_last_whose_estimate_fits():
    config = _tiny()
    for batch in (1, 7, 40):
        total = memory.estimate(config, batch, 256)["total"]
        assert memory.largest_batch(config, 256, total) == batch
        assert memory.largest_batch(config, 256, total - 1) == batch - 1


def test_released_full_model_with_eval_defaults_fits_16_gb():
    full = PanguCodeCLMConfig.preset("300m", separation="full")
    assert full.vocab_size == 64007
    e = memory.estimate(full, 16, 1024)  # eval.py's default batch and max length
    assert 1.4e9 < e["weights"] < 1.6e9
    assert e["total"] < 14e9  # a 16 GB machine has ~14-15 GB available
    assert memory.check_fits(full, 16, 1024, available=14e9) is None


def test_oversize_batch_is_refused_with_the_figure_and_the_batch_that_fits():
    config = _tiny()
    available = memory.estimate(config, 5, 256)["total"] + 1
    assert memory.check_fits(config, 5, 256, available=available) is None
    message = memory.check_fits(config, 32, 256, available=available, what="DIR")
    need = memory.estimate(config, 32, 256)["total"] / 1e9
    assert message.startswith(f"DIR: batch 32 needs ~{need:.1f} GB")
    assert f"this machine has {available / 1e9:.1f} GB available" in message
    assert "lower --batch-size to 5" in message and "--no-memory-check" in message
    assert memory.largest_batch(config, 256, available) == 5


def test_not_even_one_row_fits():
    config = _tiny()
    message = memory.check_fits(config, 1, 256, available=1000)
    assert "not even batch 1 fits: lower --max-length" in message
    assert memory.largest_batch(config, 256, 1000) == 0


def test_available_memory_is_mem_available_lowered_by_the_cgroup_headroom(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   10000000 kB\n")
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    assert memory.available_bytes(meminfo, cgroup) == 10000000 * 1024
    (cgroup / "memory.max").write_text("6000000000\n")
    (cgroup / "memory.current").write_text("1000000000\n")
    assert memory.available_bytes(meminfo, cgroup) == 5000000000
    (cgroup / "memory.max").write_text("max\n")
    assert memory.available_bytes(meminfo, cgroup) == 10000000 * 1024
    assert memory.available_bytes(tmp_path / "absent", tmp_path / "absent") is None


def test_unknown_available_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert memory.check_fits(_tiny(), 10 ** 6, 256) is None


def test_evaluate_refuses_before_reading_the_weights(tmp_path, monkeypatch, capsys):
    from pangu_codeclm.cli import main
    config = _tiny()
    write_hf(tmp_path / "ckpt", config, family_for(config).random_weights(config))
    (tmp_path / "ckpt" / SAFETENSORS).write_bytes(b"not read")  # the refusal comes before any weight is read
    available = memory.estimate(config, 4, 256)["total"] + 1
    monkeypatch.setattr(memory, "available_bytes", lambda: available)
    argv = ["evaluate", "--model", str(tmp_path / "ckpt"), "--dataset", "humaneval", "--limit", "1",
            "--batch-size", "32", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'ckpt'}: batch 32 needs ~" in err
    assert "lower --batch-size to 4, or pass --no-memory-check" in err
    assert not (tmp_path / "run").exists()
    # with the check off it goes on and fails on the corrupt weights file instead
    assert main(argv + ["--no-memory-check"]) == 1
    assert "cannot read safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("batch", [1, 8])
def test_estimate_grows_with_the_vocabulary_only_through_weights_and_logits(batch):
    small, large = memory.estimate(_tiny(), batch, 256), memory.estimate(_tiny(vocab_size=2000), batch, 256)
    extra_weights = 4 * 1000 * 32
    assert large["weights"] - small["weights"] == extra_weights
    assert large["total"] - small["total"] == extra_weights + batch * 4 * memory.LOGIT_ROWS * 1000
    assert np.isclose(large["kv_cache"], small["kv_cache"])
