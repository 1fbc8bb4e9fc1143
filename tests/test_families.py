"""Model families: the layout is the network (names, shapes, counts, cached layers) and the registry resolves it."""
import math

import numpy as np
import pytest

from pangu_codeclm.config import PRESETS, PanguCodeCLMConfig
from pangu_codeclm.families import FAMILIES, ModelFamily, family_for, register
from pangu_codeclm.families.pangu_alpha import ARCHITECTURES, PANGU_ALPHA


def _tiny(**overrides):
    values = dict(vocab_size=300, num_layers=3, hidden_size=32, num_heads=4, ffn_hidden_size=64,
                  max_position_embeddings=16, seq_length=16)
    values.update(overrides)
    return PanguCodeCLMConfig.preset("tiny", **values)


def test_layout_is_the_networks_parameters(ms_cpu):
    config = _tiny()
    family = family_for(config)
    network = family.build_network(config)
    got = {p.name: tuple(p.shape) for p in network.trainable_params()}
    assert got == family.shapes(config)
    assert family.parameter_count(config) == sum(math.prod(s) for s in got.values())
    assert network.num_cached_layers == family.cached_layers(config) == config.num_layers + 1


def test_parts_add_up_and_block_counts_one_block():
    config = _tiny()
    f = PANGU_ALPHA
    parts = {part: f.parameter_count(config, part) for part in ("embedding", "block", "top", "final")}
    assert parts["embedding"] == (300 + 16 + 16) * 32               # wte, wpe, top_query_embedding
    assert parts["final"] == 2 * 32
    e, ffn = 32, 64
    assert parts["block"] == 3 * e * e + 3 * e + e * e + e + e * ffn + ffn + ffn * e + e + 4 * e
    assert parts["top"] == parts["block"]   # q_attn (E, E) + c_attn (E, 2E): K and V only; same count
    assert f.parameter_count(config) == (parts["embedding"] + config.num_layers * parts["block"] + parts["top"]
                                         + parts["final"])
    with pytest.raises(ValueError, match="unknown part 'head'"):
        f.parameter_count(config, "head")


def test_random_weights_follow_the_layout():
    config = _tiny(num_layers=1)
    weights = PANGU_ALPHA.random_weights(config, seed=1, std=0.02)
    assert list(weights) == list(PANGU_ALPHA.shapes(config))
    assert all(w.dtype == np.float32 for w in weights.values())
    assert abs(weights["transformer.ln_f.weight"].mean() - 1.0) < 0.02     # LayerNorm gains centred on 1
    assert abs(weights["transformer.h.0.mlp.c_fc.weight"].mean()) < 0.01
    again = PANGU_ALPHA.random_weights(config, seed=1, std=0.02)
    assert all(np.array_equal(weights[k], again[k]) for k in weights)


def test_the_released_size():
    config = PanguCodeCLMConfig.preset("300m", separation="full")
    assert config.vocab_size == 64007
    assert PANGU_ALPHA.parameter_count(config) == 382_547_968


def test_presets_come_from_the_family_architectures():
    for name in ("300m", "tiny"):
        assert {k: v for k, v in PRESETS[name].items() if k != "seq_length"} == ARCHITECTURES[name]


def test_registry_resolves_and_refuses():
    assert family_for("pangu_codeclm") is PANGU_ALPHA
    assert family_for(_tiny()) is PANGU_ALPHA
    with pytest.raises(ValueError, match="unknown model_type 'llama'.*pangu_codeclm"):
        family_for("llama")
    with pytest.raises(ValueError, match="already registered"):
        register(ModelFamily("pangu_codeclm", "", "", None, None))
    assert set(FAMILIES) == {"pangu_codeclm"}
