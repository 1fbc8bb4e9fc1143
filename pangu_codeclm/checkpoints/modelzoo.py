"""Model-zoo PanGu-Alpha checkpoints: the MindSpore `.ckpt` of the PanGu-Alpha network, read into this project's
layout (config from the shapes) and written back from it, bit for bit.

What the sources say (checked there):
- mindspore-ai/models `official/nlp/Pangu_alpha/src/pangu_alpha.py` (the mindformers-transformer generation, name
  variant "mindformers"): `backbone.embedding.word_embedding.embedding_table` [V,E] and
  `backbone.embedding.position_embedding.embedding_table` [seq,E]; `backbone.blocks` is a mindformers
  `TransformerEncoder(num_layers=config.num_layers - 1)`, so the model zoo's `num_layers` COUNTS the top query layer
  (ours does not); `backbone.top_query_embedding.embedding_table`, `backbone.top_query_layer` (a
  TransformerEncoderLayer whose attention takes Q from the query embedding, dense1(query), and K, V as
  dense2/dense3(layernorm1(x)));
  `backbone.layernorm` is applied before the top query layer (the non-pipeline branch; the pipeline branch applies it
  after) and there is no LayerNorm after it; the head `PanGuHead` is `matmul(state, word_table^T)`: tied, no parameter.
  `PanguAlphaConfig` (`src/pangu_alpha_config.py`): vocab_size 40000, hidden_act 'fast_gelu', eod/pad id 6; presets
  1.3B (E 1024, 16 layers, 32 heads), 2.6B (2560, 32, 32), 13B (5120, 40, 40), 200B (16384, 64, 128), FFN 4E.
- mindspore-lab/mindformers `mindformers/modules/transformer/transformer.py` + `modules/layers.py`: `Linear` stores
  weight [out, in] when transpose_b (the default: attention.dense1/2/3) and [in, out] with transpose_b=False
  (attention.projection, output.mapping, output.projection); query and key are each divided by sqrt(sqrt(head_dim)),
  i.e. scores scaled by 1/sqrt(head_dim) as ours; masked scores get (1 - mask) * -10000 added (ours sets them to
  -10000: the same softmax wherever a row has a visible key); `LayerNorm` eps 1e-5; `fast_gelu` is MindSpore's
  FastGeLU, x * sigmoid(1.702 x) (mindformers `modules/activation.py`).
- The older PanGu-Alpha release code (class `PANGUALPHA_Model`, name variant "legacy"): the tables sit at
  `backbone.word_embedding.embedding_table`, `backbone.position_embedding.embedding_table`,
  `backbone.top_query_embedding.embedding_table`; dense1/2/3 are `nn.Dense` ([out, in]), mapping/projection are
  `Mapping` ([in, out]), the activation is `nn.GELU()` (MindSpore's GeLU: the tanh approximation), blocks again
  num_layers - 1 (mindspore-ai/mindspore `model_zoo/official/nlp/pangu_alpha/src/pangu_alpha.py` has the same
  orientation and `nn.GELU`).
So the only difference in the network is the activation (config key `activation`); the rest is names, orientation and
the split Q/K/V (ours: one c_attn [E,3E], the top layer's q_attn [E,E] + c_attn [E,2E] for K,V).

Shapes give vocab, hidden size, positions, FFN size and the layer count; the number of heads comes from the presets
above or `num_heads=`, and the activation from the name variant or `activation=`. Optimizer moments, step counters and
loss scale in a training `.ckpt` are skipped. The model-zoo file has no separation map and no tokenizer: they come from
`aux_dir` (default: the file's directory when it holds a tokenizer).
"""
import logging
import os
import re

import numpy as np

from ..config import ConfigError, PanguCodeCLMConfig
from ..families import family_for
from ..io_utils import atomic_path
from .base import Checkpoint
from .checks import checked_for_writing, check_weights, read_separation_map, tokenizer_dir
from .errors import CheckpointError
from .msfile import is_checkpoint_file, is_training_state, load_parameters, parameter_names
from .registry import Format, register

logger = logging.getLogger(__name__)

# Name variant -> (word table, position table) and the activation its network uses.
VARIANTS = {
    "mindformers": ("backbone.embedding.word_embedding.embedding_table",
                    "backbone.embedding.position_embedding.embedding_table"),
    "legacy": ("backbone.word_embedding.embedding_table", "backbone.position_embedding.embedding_table"),
}
VARIANT_ACTIVATION = {"mindformers": "fast_gelu", "legacy": "gelu_tanh"}
TOP_QUERY_TABLE = "backbone.top_query_embedding.embedding_table"
FINAL_LN = {"transformer.ln_f.weight": "backbone.layernorm.gamma", "transformer.ln_f.bias": "backbone.layernorm.beta"}
# (hidden_size, model-zoo num_layers incl. the top query layer) -> num_heads, from pangu_alpha_config.py's presets.
KNOWN_HEADS = {(1024, 16): 32, (2560, 32): 32, (5120, 40): 40, (16384, 64): 128}
ZOO_DEFAULTS = dict(eos_token_id=6, pad_token_id=6)  # PanguAlphaConfig's eod_token / pad_token

# Our key inside a block -> the model-zoo tensors it is made of: (name, transposed), concatenated on the last axis.
_COMMON = {
    "ln_1.weight": [("layernorm1.gamma", False)], "ln_1.bias": [("layernorm1.beta", False)],
    "ln_2.weight": [("layernorm2.gamma", False)], "ln_2.bias": [("layernorm2.beta", False)],
    "attn.c_proj.weight": [("attention.projection.weight", False)],
    "attn.c_proj.bias": [("attention.projection.bias", False)],
    "mlp.c_fc.weight": [("output.mapping.weight", False)], "mlp.c_fc.bias": [("output.mapping.bias", False)],
    "mlp.c_proj.weight": [("output.projection.weight", False)],
    "mlp.c_proj.bias": [("output.projection.bias", False)],
}
_QKV = {"attn.c_attn.weight": [(f"attention.dense{i}.weight", True) for i in (1, 2, 3)],
        "attn.c_attn.bias": [(f"attention.dense{i}.bias", False) for i in (1, 2, 3)]}
_TOP_QKV = {"attn.q_attn.weight": [("attention.dense1.weight", True)],
            "attn.q_attn.bias": [("attention.dense1.bias", False)],
            "attn.c_attn.weight": [(f"attention.dense{i}.weight", True) for i in (2, 3)],
            "attn.c_attn.bias": [(f"attention.dense{i}.bias", False) for i in (2, 3)]}
_BLOCK_INDEX = re.compile(r"^backbone\.blocks\.(\d+)\.")
_INFERENCE_STATE = re.compile(r"\.(key_past|value_past)$")


def parts_map(num_layers, variant):
    """{our key: [(model-zoo name, transposed), ...]} of a model with `num_layers` ordinary blocks."""
    word, position = VARIANTS[variant]
    out = {"transformer.wte.weight": [(word, False)], "transformer.wpe.weight": [(position, False)]}
    for i in range(num_layers):
        out.update({f"transformer.h.{i}.{k}": [(f"backbone.blocks.{i}.{n}", t) for n, t in v]
                    for k, v in {**_COMMON, **_QKV}.items()})
    out.update({k: [(v, False)] for k, v in FINAL_LN.items()})
    out["top_query_embedding.weight"] = [(TOP_QUERY_TABLE, False)]
    out.update({f"top_query_layer.{k}": [(f"backbone.top_query_layer.{n}", t) for n, t in v]
                for k, v in {**_COMMON, **_TOP_QKV}.items()})
    return out


def zoo_shapes(config, variant):
    """{model-zoo name: shape} of a model with our `config`."""
    ours = family_for(config).shapes(config)
    out = {}
    for key, parts in parts_map(config.num_layers, variant).items():
        shape = ours[key]
        width = shape[-1] // len(parts)
        for name, transposed in parts:
            part = shape[:-1] + (width,)
            out[name] = part[::-1] if transposed else part
    return out


# ---------------------------------------------------------------------------------------------------- reading
def _strip_prefix(names, source):
    """(variant, prefix before `backbone.`) from the word table's name (a train cell may add `network.` etc.)."""
    for variant, (word, _) in VARIANTS.items():
        found = [n for n in names if n.endswith(word) and not is_training_state(n)]
        if found:
            if len(found) > 1:
                raise CheckpointError(f"{source}: the word embedding table is ambiguous: {found[:4]}")
            return variant, found[0][:-len(word)]
    raise CheckpointError(f"{source}: no model-zoo word embedding table: expected "
                          f"'{VARIANTS['mindformers'][0]}' or '{VARIANTS['legacy'][0]}'")


def _model_entries(names, prefix):
    """Names of the model's own tensors, prefix removed (optimizer state, counters and KV caches skipped)."""
    out = {}
    for name in names:
        if is_training_state(name) or _INFERENCE_STATE.search(name):
            continue
        out[name[len(prefix):] if prefix and name.startswith(prefix) else name] = name
    return out


def detect(path):
    if not is_checkpoint_file(path):
        return False
    return any(n.endswith(word) for n in parameter_names(path) for word, _ in VARIANTS.values())


def config_from_shapes(params, variant, source, num_heads=None, activation=None, **overrides):
    """Our config for model-zoo tensors {name: array} (prefix removed); CheckpointError naming what is missing."""
    word, position = VARIANTS[variant]
    for name in (word, position, TOP_QUERY_TABLE, "backbone.blocks.0.output.mapping.weight"):
        if name not in params:
            raise CheckpointError(f"{source}: missing parameter '{name}'")
    vocab, hidden = params[word].shape
    blocks = sorted({int(m.group(1)) for m in map(_BLOCK_INDEX.match, params) if m})
    gaps = sorted(set(range(blocks[-1] + 1)) - set(blocks))
    if gaps:
        raise CheckpointError(f"{source}: missing block 'backbone.blocks.{gaps[0]}' (blocks found: "
                              f"{len(blocks)} of 0..{blocks[-1]})")
    if not any(n.startswith("backbone.top_query_layer.") for n in params):
        raise CheckpointError(f"{source}: missing the top query layer 'backbone.top_query_layer.*'")
    zoo_layers = len(blocks) + 1
    if num_heads is None:
        num_heads = KNOWN_HEADS.get((hidden, zoo_layers))
        if num_heads is None:
            known = ", ".join(f"hidden {e} x {n} layers" for e, n in KNOWN_HEADS)
            raise CheckpointError(f"{source}: the number of heads cannot be read from the shapes and hidden size "
                                  f"{hidden} with {zoo_layers} layers (top query layer included) is no known model-zoo "
                                  f"preset ({known}); pass num_heads (convert --num-heads)")
    values = dict(vocab_size=int(vocab), hidden_size=int(hidden), num_layers=len(blocks), num_heads=int(num_heads),
                  ffn_hidden_size=int(params["backbone.blocks.0.output.mapping.weight"].shape[1]),
                  max_position_embeddings=int(params[position].shape[0]), seq_length=int(params[position].shape[0]),
                  activation=activation or VARIANT_ACTIVATION[variant], **ZOO_DEFAULTS)
    values.update(overrides)
    try:
        return PanguCodeCLMConfig(**values)
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def to_ours(params, config, variant, source):
    """Our weights {HF key: array} from model-zoo tensors; every tensor checked for presence and shape first."""
    expected = zoo_shapes(config, variant)
    for name, shape in expected.items():
        if name not in params:
            raise CheckpointError(f"{source}: missing parameter '{name}' (expected shape {shape})")
        if tuple(params[name].shape) != shape:
            raise CheckpointError(f"{source}: parameter '{name}' has shape {tuple(params[name].shape)}, expected "
                                  f"{shape}")
    unexpected = sorted(set(params) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: unexpected parameter '{unexpected[0]}' with shape "
                              f"{tuple(params[unexpected[0]].shape)}"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    out = {}
    for key, parts in parts_map(config.num_layers, variant).items():
        arrays = [params[name].T if transposed else params[name] for name, transposed in parts]
        out[key] = np.ascontiguousarray(arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=-1))
    return out


def read_modelzoo(path, aux_dir=None, num_heads=None, activation=None, **config_overrides):
    """Read and check a model-zoo PanGu-Alpha checkpoint file; returns a Checkpoint in this project's layout."""
    path = os.fspath(path)
    entries = load_parameters(path)
    variant, prefix = _strip_prefix(list(entries), path)
    params = {short: entries[name] for short, name in _model_entries(entries, prefix).items()}
    config = config_from_shapes(params, variant, path, num_heads, activation, **config_overrides)
    weights = check_weights(to_ours(params, config, variant, path), config, path)
    if aux_dir is None:
        aux_dir = tokenizer_dir(os.path.dirname(os.path.abspath(path)))
    mapping = read_separation_map(aux_dir, config) if aux_dir else {}
    logger.info("read model-zoo PanGu-Alpha checkpoint %s (%s names, %d blocks + top query layer, %d heads, %s; "
                "%d of %d entries are weights)", path, variant, config.num_layers, config.num_heads,
                config.activation, len(params), len(entries))
    return Checkpoint(config, weights, mapping, tokenizer_dir(aux_dir), "modelzoo", path)


# ---------------------------------------------------------------------------------------------------- writing
def write_modelzoo(path, config, weights, separation_map=None, tokenizer=None, overwrite=False,
                   variant="mindformers", dtype="float32"):
    """Write a model-zoo PanGu-Alpha `.ckpt` file (`variant`: its names; `dtype`: float32 or float16). The file holds
    no map and no tokenizer: a separated model is refused, a tokenizer is not written."""
    import mindspore as ms
    path = os.fspath(path)
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype: expected float32 or float16, got {dtype!r}")
    if not path.endswith(".ckpt"):
        raise CheckpointError(f"{path}: a model-zoo checkpoint is a .ckpt file")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    if separation_map or config.separation != "none":
        raise CheckpointError(f"{path}: the model-zoo layout has no separation map; only separation 'none' can be "
                              f"written (this model has '{config.separation}')")
    weights = checked_for_writing(config, weights, separation_map, tokenizer)
    if config.activation != VARIANT_ACTIVATION[variant]:
        logger.warning("%s: this model uses activation %r; run it in the model zoo with hidden_act=%r (the %s "
                       "network's default is %r) and read it back with activation=%r", path, config.activation,
                       config.activation, variant, VARIANT_ACTIVATION[variant], config.activation)
    params = []
    for key, parts in parts_map(config.num_layers, variant).items():
        pieces = np.split(weights[key], len(parts), axis=-1)
        for (name, transposed), piece in zip(parts, pieces):
            value = np.ascontiguousarray(piece.T if transposed else piece, dtype=np.dtype(dtype))
            params.append({"name": name, "data": ms.Tensor(value)})
    with atomic_path(path) as tmp:
        try:
            ms.save_checkpoint(params, tmp + ".ckpt")  # MindSpore insists on the .ckpt suffix
            os.replace(tmp + ".ckpt", tmp)
        finally:
            if os.path.exists(tmp + ".ckpt"):
                os.remove(tmp + ".ckpt")
    if tokenizer is not None:
        logger.info("%s: the model-zoo file carries no tokenizer; keep the tokenizer directory beside it", path)
    logger.info("wrote model-zoo PanGu-Alpha checkpoint %s (%s names, %d tensors, %s)", path, variant, len(params),
                dtype)


MODELZOO = register(Format(
    name="modelzoo", description="a model-zoo PanGu-Alpha MindSpore .ckpt (mindspore-ai/models Pangu_alpha)",
    signature="a MindSpore checkpoint file with model-zoo PanGu-Alpha names", detect=detect, read=read_modelzoo,
    write=write_modelzoo, config_from_options=True))
