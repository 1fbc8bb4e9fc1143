"""Model-zoo PanGu-Alpha checkpoints: detect, read (config from the shapes), convert, write back bit for bit, run with
the network's activation against a numpy reference, and refuse truncated or mismatched files."""
import os

import numpy as np
import pytest

from pangu_codeclm.checkpoints import CheckpointError, FORMATS, detect_format, read_checkpoint
from pangu_codeclm.cli import main as cli_main
from pangu_codeclm.config import ConfigError, PanguCodeCLMConfig
from reference_numpy import hf_logits, modelzoo_logits

E, F, V, P, HEADS, BLOCKS = 32, 64, 64, 16, 4, 2   # BLOCKS ordinary blocks: the model zoo's num_layers is BLOCKS + 1
TABLES = {"mindformers": ("backbone.embedding.word_embedding.embedding_table",
                          "backbone.embedding.position_embedding.embedding_table"),
          "legacy": ("backbone.word_embedding.embedding_table", "backbone.position_embedding.embedding_table")}


def zoo_params(variant="mindformers", blocks=BLOCKS, seed=0, dtype=np.float32):
    """Random tensors under the model zoo's names and orientations (written from its source, not from our reader):
    dense1/2/3 [out, in], projection / output.mapping / output.projection [in, out], LayerNorm gamma/beta."""
    rng = np.random.default_rng(seed)
    word, position = TABLES[variant]
    shapes = {word: (V, E), position: (P, E), "backbone.top_query_embedding.embedding_table": (P, E),
              "backbone.layernorm.gamma": (E,), "backbone.layernorm.beta": (E,)}
    for prefix in [f"backbone.blocks.{i}" for i in range(blocks)] + ["backbone.top_query_layer"]:
        for ln in ("layernorm1", "layernorm2"):
            shapes.update({f"{prefix}.{ln}.gamma": (E,), f"{prefix}.{ln}.beta": (E,)})
        for d in ("dense1", "dense2", "dense3", "projection"):
            shapes.update({f"{prefix}.attention.{d}.weight": (E, E), f"{prefix}.attention.{d}.bias": (E,)})
        shapes.update({f"{prefix}.output.mapping.weight": (E, F), f"{prefix}.output.mapping.bias": (F,),
                       f"{prefix}.output.projection.weight": (F, E), f"{prefix}.output.projection.bias": (E,)})
    return {name: ((1.0 if name.endswith("gamma") else 0.0) + 0.3 * rng.standard_normal(shape)).astype(dtype)
            for name, shape in shapes.items()}


def save_zoo(path, params, training_state=True):
    """Write `params` with mindspore.save_checkpoint, as a training run of the model zoo leaves them (optimizer
    moments and counters beside the weights)."""
    import mindspore as ms
    entries = [{"name": n, "data": ms.Tensor(v)} for n, v in params.items()]
    if training_state:
        entries += [{"name": "adam_m." + n, "data": ms.Tensor(np.zeros_like(v))} for n, v in list(params.items())[:3]]
        entries += [{"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))},
                    {"name": "scale_sense", "data": ms.Tensor(np.array(1024.0, np.float32))}]
    ms.save_checkpoint(entries, str(path))
    return str(path)


def load_all(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


@pytest.mark.parametrize("variant", ["mindformers", "legacy"])
def test_detect_read_convert_and_write_back_bit_exact(variant, tmp_path):
    params = zoo_params(variant)
    src = save_zoo(tmp_path / "zoo.ckpt", params)
    assert detect_format(src) == "modelzoo"
    ckpt = read_checkpoint(src, num_heads=HEADS)
    c = ckpt.config
    assert (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.ffn_hidden_size, c.max_position_embeddings) \
        == (V, E, BLOCKS, HEADS, F, P)
    assert c.activation == {"mindformers": "fast_gelu", "legacy": "gelu_tanh"}[variant] and ckpt.layout == "modelzoo"
    # Q/K/V are concatenated into c_attn, transposed to (in, out); the top layer's Q goes to q_attn.
    w = ckpt.weights
    q, k, v = (params[f"backbone.blocks.1.attention.dense{i}.weight"] for i in (1, 2, 3))
    assert np.array_equal(w["transformer.h.1.attn.c_attn.weight"], np.concatenate([q.T, k.T, v.T], axis=1))
    assert np.array_equal(w["top_query_layer.attn.q_attn.weight"],
                          params["backbone.top_query_layer.attention.dense1.weight"].T)
    assert np.array_equal(w["transformer.ln_f.weight"], params["backbone.layernorm.gamma"])
    # model zoo -> ours (CLI) -> model zoo: every tensor bit-exact, the optimizer state left behind.
    assert cli_main(["convert", "--to", "mindspore", src, str(tmp_path / "ms"), "--num-heads", str(HEADS)]) == 0
    assert read_checkpoint(tmp_path / "ms").config.activation == c.activation
    back = tmp_path / "back.ckpt"
    assert cli_main(["convert", "--to", "modelzoo", str(tmp_path / "ms"), str(back), "--variant", variant]) == 0
    written = load_all(back)
    assert sorted(written) == sorted(params)
    for name, value in params.items():
        assert written[name].dtype == value.dtype and np.array_equal(written[name], value), name
    assert cli_main(["convert", "--to", "modelzoo", str(tmp_path / "ms"), str(back)]) == 1   # exists
    with pytest.raises(ValueError, match="option 'num_heads' does not apply to reading a mindspore checkpoint"):
        from pangu_codeclm.convert.convert import convert
        convert(tmp_path / "ms", tmp_path / "x", "hf", num_heads=4)


def test_fp16_checkpoint_round_trips_and_known_presets_give_the_heads(tmp_path):
    params = zoo_params(dtype=np.float16)
    src = save_zoo(tmp_path / "zoo16.ckpt", params, training_state=False)
    ckpt = read_checkpoint(src, num_heads=HEADS)
    assert ckpt.weights["transformer.wte.weight"].dtype == np.float32   # read in the config's param dtype
    FORMATS["modelzoo"].write(str(tmp_path / "back.ckpt"), ckpt.config, ckpt.weights, dtype="float16")
    written = load_all(tmp_path / "back.ckpt")
    assert all(written[n].dtype == np.float16 and np.array_equal(written[n], v) for n, v in params.items())
    # The heads of the model zoo's presets (pangu_alpha_config.py) come from (hidden size, layers incl. the top one).
    from pangu_codeclm.checkpoints.modelzoo import config_from_shapes
    word, position = TABLES["mindformers"]
    shapes = {word: (40000, 2560), position: (1024, 2560), "backbone.top_query_embedding.embedding_table": (1024, 2560),
              "backbone.top_query_layer.layernorm1.gamma": (2560,)}
    shapes.update({f"backbone.blocks.{i}.output.mapping.weight": (2560, 10240) for i in range(31)})
    fake = {n: np.broadcast_to(np.float32(0), s) for n, s in shapes.items()}
    config = config_from_shapes(fake, "mindformers", "2.6B")
    assert (config.num_layers, config.num_heads, config.vocab_size, config.activation) == (31, 32, 40000, "fast_gelu")
    assert (config.eos_token_id, config.pad_token_id) == (6, 6)
    with pytest.raises(CheckpointError, match=r"number of heads cannot be read from the shapes and hidden size 32 "
                                              r"with 3 layers .* pass num_heads"):
        read_checkpoint(src)


@pytest.mark.parametrize("variant", ["mindformers", "legacy"])
def test_logits_of_the_model_zoo_network_match_numpy(variant, tmp_path):
    import pangu_codeclm
    params = zoo_params(variant, seed=3)
    src = save_zoo(tmp_path / "zoo.ckpt", params)
    model = pangu_codeclm.from_pretrained(src, num_heads=HEADS)
    ids = np.array([[1, 5, 9, 2, 33, 60, 7], [4, 4, 0, 63, 12, 8, 3]])
    act = model.config.activation
    expected = modelzoo_logits(params, *TABLES[variant], HEADS, act, ids)
    got = model.logits(ids)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)
    # The activation matters: the exact-gelu reference is measurably different.
    assert np.abs(modelzoo_logits(params, *TABLES[variant], HEADS, "gelu", ids) - expected).max() > 1e-3


@pytest.mark.parametrize("activation", ["gelu", "fast_gelu", "gelu_tanh"])
def test_network_activation_matches_numpy_on_our_layout(activation, tmp_path):
    from pangu_codeclm.checkpoints.mindspore_dir import write_mindspore
    from pangu_codeclm.families import family_for
    import pangu_codeclm
    config = PanguCodeCLMConfig.preset("tiny", vocab_size=V, hidden_size=E, num_layers=BLOCKS, num_heads=HEADS,
                                       ffn_hidden_size=F, max_position_embeddings=P, seq_length=P,
                                       pad_token_id=62, eos_token_id=63, activation=activation)
    weights = family_for(config).random_weights(config, seed=4, std=0.3)
    write_mindspore(tmp_path / "ms", config, weights)
    ids = np.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    got = pangu_codeclm.from_pretrained(tmp_path / "ms").logits(ids)
    np.testing.assert_allclose(got, hf_logits(weights, config, ids), rtol=2e-4, atol=2e-4)


def test_truncated_or_mismatched_files_are_refused(tmp_path):
    params = zoo_params()
    no_block = {n: v for n, v in zoo_params(blocks=3).items() if not n.startswith("backbone.blocks.1.")}
    with pytest.raises(CheckpointError, match=r"missing block 'backbone\.blocks\.1'"):
        read_checkpoint(save_zoo(tmp_path / "gap.ckpt", no_block), num_heads=HEADS)
    partial = {n: v for n, v in params.items() if n != "backbone.blocks.1.attention.dense2.bias"}
    with pytest.raises(CheckpointError, match=r"missing parameter 'backbone\.blocks\.1\.attention\.dense2\.bias' "
                                              r"\(expected shape \(32,\)\)"):
        read_checkpoint(save_zoo(tmp_path / "partial.ckpt", partial), num_heads=HEADS)
    wrong = dict(params, **{"backbone.blocks.0.attention.dense2.weight": np.zeros((E, E + 1), np.float32)})
    with pytest.raises(CheckpointError, match=r"'backbone\.blocks\.0\.attention\.dense2\.weight' has shape \(32, 33\), "
                                              r"expected \(32, 32\)"):
        read_checkpoint(save_zoo(tmp_path / "wrong.ckpt", wrong), num_heads=HEADS)
    no_top = {n: v for n, v in params.items() if not n.startswith("backbone.top_query_layer.")}
    with pytest.raises(CheckpointError, match=r"missing the top query layer"):
        read_checkpoint(save_zoo(tmp_path / "notop.ckpt", no_top), num_heads=HEADS)
    extra = dict(params, **{"backbone.blocks.0.attention.dense4.weight": np.zeros((E, E), np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected parameter 'backbone\.blocks\.0\.attention\.dense4\.weight'"):
        read_checkpoint(save_zoo(tmp_path / "extra.ckpt", extra), num_heads=HEADS)
    good = save_zoo(tmp_path / "good.ckpt", params)
    with open(good, "rb") as f:
        head = f.read(os.path.getsize(good) // 2)
    with open(tmp_path / "cut.ckpt", "wb") as f:
        f.write(head)
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: cannot read MindSpore checkpoint"):
        read_checkpoint(tmp_path / "cut.ckpt", format="modelzoo", num_heads=HEADS)
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: cannot read MindSpore checkpoint"):
        detect_format(tmp_path / "cut.ckpt")


def test_writers_refuse_what_the_target_cannot_hold(tmp_path):
    from pangu_codeclm.checkpoints.hf import write_hf
    from pangu_codeclm.checkpoints.modelzoo import write_modelzoo
    ckpt = read_checkpoint(save_zoo(tmp_path / "zoo.ckpt", zoo_params()), num_heads=HEADS)
    with pytest.raises(ConfigError, match=r"'activation': 'fast_gelu' cannot be exported to the HF layout"):
        write_hf(tmp_path / "hf", ckpt.config, ckpt.weights)
    assert not os.path.exists(tmp_path / "hf")
    assert cli_main(["convert", "--to", "hf", str(tmp_path / "zoo.ckpt"), str(tmp_path / "hf2"),
                     "--num-heads", str(HEADS)]) == 1
    separated = ckpt.config.replace(separation="partial")
    with pytest.raises(CheckpointError, match="the model-zoo layout has no separation map"):
        write_modelzoo(str(tmp_path / "sep.ckpt"), separated, ckpt.weights, {3: 40})
    with pytest.raises(CheckpointError, match=r"a model-zoo checkpoint is a \.ckpt file"):
        write_modelzoo(str(tmp_path / "zoo_dir"), ckpt.config, ckpt.weights)


def test_training_starts_from_a_model_zoo_checkpoint(tmp_path):
    from pangu_codeclm.families import family_for
    from pangu_codeclm.train.pretrained import load_pretrained
    src = save_zoo(tmp_path / "zoo.ckpt", zoo_params(seed=9))
    config = read_checkpoint(src, num_heads=HEADS).config
    network = family_for(config).build_network(config)
    load_pretrained(network, src, num_heads=HEADS)
    expected = read_checkpoint(src, num_heads=HEADS).weights
    got = {p.name: p.asnumpy() for p in network.get_parameters()}
    assert all(np.array_equal(got[name], value) for name, value in expected.items())
