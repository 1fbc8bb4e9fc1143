"""PanGu-Alpha (CodeCLM): wte + wpe, `num_layers` pre-LN blocks, ln_f, a top query layer with its own position
embedding; the head is tied to wte. Keys and shapes are those of the released HF checkpoints (Conv1D weights
(in, out)); `num_layers` counts the ordinary blocks only, the top query layer is extra."""
from . import ModelFamily, ParameterSpec, register

MODEL_TYPE = "pangu_codeclm"

# Architectures of the PanGu-Alpha family (num_layers excludes the top query layer); `tiny` is for tests and demos.
ARCHITECTURES = {
    "300m": dict(hidden_size=1024, num_layers=24, num_heads=16, ffn_hidden_size=4096, max_position_embeddings=1024),
    "2.6b": dict(hidden_size=2560, num_layers=31, num_heads=32, ffn_hidden_size=10240, max_position_embeddings=1024),
    "13b": dict(hidden_size=5120, num_layers=39, num_heads=40, ffn_hidden_size=20480, max_position_embeddings=1024),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, ffn_hidden_size=256, max_position_embeddings=128),
}


def _block(prefix, e, ffn, part, index=-1):
    top = part == "top"
    width = 2 * e if top else 3 * e   # the top layer's queries come from q_attn; c_attn holds K and V only
    specs = [ParameterSpec(f"{prefix}.ln_1.weight", (e,), 1.0, part, index),
             ParameterSpec(f"{prefix}.ln_1.bias", (e,), 0.0, part, index),
             ParameterSpec(f"{prefix}.ln_2.weight", (e,), 1.0, part, index),
             ParameterSpec(f"{prefix}.ln_2.bias", (e,), 0.0, part, index)]
    if top:
        specs += [ParameterSpec(f"{prefix}.attn.q_attn.weight", (e, e), 0.0, part, index),
                  ParameterSpec(f"{prefix}.attn.q_attn.bias", (e,), 0.0, part, index)]
    for name, shape in (("attn.c_attn.weight", (e, width)), ("attn.c_attn.bias", (width,)),
                        ("attn.c_proj.weight", (e, e)), ("attn.c_proj.bias", (e,)),
                        ("mlp.c_fc.weight", (e, ffn)), ("mlp.c_fc.bias", (ffn,)),
                        ("mlp.c_proj.weight", (ffn, e)), ("mlp.c_proj.bias", (e,))):
        specs.append(ParameterSpec(f"{prefix}.{name}", shape, 0.0, part, index))
    return specs


def layout(config):
    e, ffn, positions = config.hidden_size, config.ffn_hidden_size, config.max_position_embeddings
    specs = [ParameterSpec("transformer.wte.weight", (config.vocab_size, e), 0.0, "embedding"),
             ParameterSpec("transformer.wpe.weight", (positions, e), 0.0, "embedding")]
    for i in range(config.num_layers):
        specs += _block(f"transformer.h.{i}", e, ffn, "block", i)
    specs += [ParameterSpec("transformer.ln_f.weight", (e,), 1.0, "final"),
              ParameterSpec("transformer.ln_f.bias", (e,), 0.0, "final"),
              ParameterSpec("top_query_embedding.weight", (positions, e), 0.0, "embedding")]
    specs += _block("top_query_layer", e, ffn, "top")
    return specs


def cached_layers(config):
    """The ordinary blocks and the top query layer each keep K/V."""
    return config.num_layers + 1


PANGU_ALPHA = register(ModelFamily(
    model_type=MODEL_TYPE,
    config_class_path="pangu_codeclm.config:PanguCodeCLMConfig",
    network_class_path="pangu_codeclm.model.pangu:PanguCodeCLMForCausalLM",
    layout_fn=layout, cached_layers_fn=cached_layers, architectures=ARCHITECTURES))
