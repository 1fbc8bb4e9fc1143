"""Config: presets, HF config.json round trip, errors naming the key, parallel validation."""
import json

import pytest

from pangu_codeclm.config import ConfigError, PanguCodeCLMConfig


def test_released_sizes_and_hf_round_trip(tmp_path):
    for separation, size in (("none", 32013), ("partial", 32477), ("full", 64007)):
        cfg = PanguCodeCLMConfig.preset("300m", separation=separation)
        assert cfg.vocab_size == size
        assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.ffn_hidden_size) == (1024, 24, 16, 4096)
        path = tmp_path / f"{separation}.json"
        cfg.save_hf_json(path)
        hf = json.loads(path.read_text())
        assert hf["model_type"] == "gpt2" and hf["architectures"] == ["PanguAlphaModel"]
        assert (hf["n_embd"], hf["n_layer"], hf["n_head"], hf["n_inner"]) == (1024, 24, 16, 4096)
        back = PanguCodeCLMConfig.from_hf_json(path)
        assert back.to_model_dict() == {**cfg.to_model_dict(), "seq_length": 1024}


@pytest.mark.parametrize("changes, key", [
    (dict(num_heads=5), "num_heads"),
    (dict(separation="half"), "separation"),
    (dict(hidden_dropout=1.5), "hidden_dropout"),
    (dict(seq_length=4096), "seq_length"),
    (dict(compute_dtype="int8"), "compute_dtype"),
    (dict(parallel={"data_paralel": 2}), "parallel.data_paralel"),
])
def test_invalid_values_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        PanguCodeCLMConfig.preset("tiny", **changes)


def test_hf_json_errors_name_file_and_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64}))
    with pytest.raises(ConfigError, match=r"config.json: missing key 'vocab_size'"):
        PanguCodeCLMConfig.from_hf_json(path)
    path.write_text(json.dumps({"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64, "vocab_size": 100,
                                "activation_function": "gelu_new"}))
    with pytest.raises(ConfigError, match="activation_function"):
        PanguCodeCLMConfig.from_hf_json(path)
    path.write_text('{"n_embd": 64,\n "n_layer": }')
    with pytest.raises(ConfigError, match=r"config.json:2: invalid JSON"):
        PanguCodeCLMConfig.from_hf_json(path)


def test_parallel_layout_validation():
    cfg = PanguCodeCLMConfig.preset("300m", batch_size=8,
                                    parallel=dict(data_parallel=2, model_parallel=4, vocab_emb_dp=True))
    cfg.validate_parallel(8)
    with pytest.raises(ConfigError, match="= 8 but 16 devices"):
        cfg.validate_parallel(16)
    bad = PanguCodeCLMConfig.preset("300m", batch_size=8, parallel=dict(data_parallel=1, model_parallel=8,
                                                                        vocab_emb_dp=False))
    with pytest.raises(ConfigError, match="'vocab_size': 32013 is not divisible"):
        bad.validate_parallel(8)
