"""Model and parallel configuration: the one source of truth for dimensions, dtypes, separation and sharding.

`PanguCodeCLMConfig` subclasses mindformers' `PretrainedConfig` and is registered as a mindformers CONFIG, so a yaml file
can name it by `type`. It reads and writes the released HF `config.json` (model_type gpt2, PanguAlphaModel).
"""
import copy
import os

from mindformers.models.configuration_utils import PretrainedConfig
from mindformers.tools.register import MindFormerModuleType, MindFormerRegister

from .families.pangu_alpha import ARCHITECTURES, MODEL_TYPE
from .io_utils import atomic_write_json, load_json
from .separation import SEPARATIONS

DTYPES = ("float32", "float16", "bfloat16")
# MLP activations: exact erf GELU (the released CodeCLM, HF config.json's "gelu"), MindSpore's FastGeLU
# x*sigmoid(1.702x) (the model-zoo PanGu-Alpha's default hidden_act) and the tanh approximation (MindSpore's nn.GELU,
# the older PanGu-Alpha release code).
ACTIVATIONS = ("gelu", "fast_gelu", "gelu_tanh")
# Vocabulary sizes of the released PanGu vocabulary (32000 pieces + 13 added ids) after each separation.
RELEASED_VOCAB_SIZES = {"none": 32013, "partial": 32477, "full": 64007}
# config.json's bos/eos: SentencePiece's <s>/</s>, as in the released configs. This config's `eos_token_id` is <eot>,
# where generation stops; config.json carries it as "eot_token_id" (see `to_hf_dict`).
HF_BOS_TOKEN_ID, HF_EOS_TOKEN_ID = 1, 2

PARALLEL_DEFAULTS = {
    "data_parallel": 1,
    "model_parallel": 1,
    "pipeline_stage": 1,
    "micro_batch_num": 1,
    "optimizer_shard": False,
    "vocab_emb_dp": True,
    "recompute": False,
    "gradient_aggregation_group": 4,
}

# Presets: the family's architectures with seq_length = max positions (`300m` is the released model, `tiny` for tests).
PRESETS = {name: {**arch, "seq_length": arch["max_position_embeddings"]}
           for name, arch in ARCHITECTURES.items() if name in ("300m", "tiny")}


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"config key '{name}': expected a positive integer, got {value!r}")


def _probability(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"config key '{name}': expected a probability in [0, 1), got {value!r}")


def normalize_parallel(parallel):
    """Return a full parallel dict (defaults filled in), validating keys and types."""
    parallel = dict(parallel or {})
    unknown = sorted(set(parallel) - set(PARALLEL_DEFAULTS))
    if unknown:
        raise ConfigError(f"config key 'parallel.{unknown[0]}': unknown; expected one of {sorted(PARALLEL_DEFAULTS)}")
    merged = {**PARALLEL_DEFAULTS, **parallel}
    for key in ("data_parallel", "model_parallel", "pipeline_stage", "micro_batch_num", "gradient_aggregation_group"):
        _positive_int(f"parallel.{key}", merged[key])
    for key in ("optimizer_shard", "vocab_emb_dp", "recompute"):
        if not isinstance(merged[key], bool):
            raise ConfigError(f"config key 'parallel.{key}': expected true/false, got {merged[key]!r}")
    return merged


@MindFormerRegister.register(MindFormerModuleType.CONFIG)
class PanguCodeCLMConfig(PretrainedConfig):
    """PanGu-Alpha CodeCLM configuration.

    `vocab_size` is the number of embedding rows, i.e. the vocabulary *after* separation (32013/32477/64007 for the
    released none/partial/full models). `num_layers` counts the ordinary blocks; the top query layer is extra.
    """

    model_type = MODEL_TYPE

    def __init__(self, vocab_size=32013, hidden_size=1024, num_layers=24, num_heads=16, ffn_hidden_size=4096,
                 max_position_embeddings=1024, seq_length=1024, batch_size=1, embedding_dropout=0.1,
                 hidden_dropout=0.1, attention_dropout=0.1, layernorm_epsilon=1e-5, initializer_range=0.02,
                 separation="none", compute_dtype="float32", param_init_type="float32",
                 softmax_compute_type="float32", pad_token_id=32002, eos_token_id=32001, objective="code",
                 parallel=None, activation="gelu", **kwargs):
        kwargs.pop("parallel_config", None)
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ffn_hidden_size = ffn_hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.seq_length = seq_length
        self.batch_size = batch_size
        self.embedding_dropout = embedding_dropout
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.layernorm_epsilon = layernorm_epsilon
        self.initializer_range = initializer_range
        self.separation = separation
        self.compute_dtype = compute_dtype
        self.param_init_type = param_init_type
        self.softmax_compute_type = softmax_compute_type
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id
        self.objective = objective
        self.activation = activation
        self.parallel = normalize_parallel(parallel)
        self.validate()

    # ------------------------------------------------------------------ validation
    @property
    def head_dim(self):
        return self.hidden_size // self.num_heads

    def validate(self):
        """Raise ConfigError naming the first invalid key."""
        for key in ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_hidden_size",
                    "max_position_embeddings", "seq_length", "batch_size"):
            _positive_int(key, getattr(self, key))
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"config key 'num_heads': {self.num_heads} does not divide hidden_size "
                              f"{self.hidden_size}")
        if self.seq_length > self.max_position_embeddings:
            raise ConfigError(f"config key 'seq_length': {self.seq_length} exceeds max_position_embeddings "
                              f"{self.max_position_embeddings}")
        for key in ("embedding_dropout", "hidden_dropout", "attention_dropout"):
            _probability(key, getattr(self, key))
        if not isinstance(self.layernorm_epsilon, (int, float)) or not 0 < self.layernorm_epsilon < 1:
            raise ConfigError(f"config key 'layernorm_epsilon': expected a small positive float, got "
                              f"{self.layernorm_epsilon!r}")
        if self.separation not in SEPARATIONS:
            raise ConfigError(f"config key 'separation': expected one of {SEPARATIONS}, got {self.separation!r}")
        for key in ("compute_dtype", "param_init_type", "softmax_compute_type"):
            if getattr(self, key) not in DTYPES:
                raise ConfigError(f"config key '{key}': expected one of {DTYPES}, got {getattr(self, key)!r}")
        if self.objective not in ("text_code", "code", "corrupt_code", "prefix_code"):
            raise ConfigError(f"config key 'objective': expected text_code, code, corrupt_code or prefix_code, got "
                              f"{self.objective!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"config key 'activation': expected one of {ACTIVATIONS}, got {self.activation!r}")
        self.parallel = normalize_parallel(self.parallel)
        return self

    def validate_parallel(self, device_num):
        """Check that the parallel layout fits `device_num` devices and the model's dimensions."""
        p = self.parallel
        used = p["data_parallel"] * p["model_parallel"] * p["pipeline_stage"]
        if used != device_num:
            raise ConfigError(f"config key 'parallel': data_parallel*model_parallel*pipeline_stage = {used} but "
                              f"{device_num} devices are used")
        mp = p["model_parallel"]
        for key in ("num_heads", "hidden_size", "ffn_hidden_size", "vocab_size"):
            if key == "vocab_size" and p["vocab_emb_dp"]:
                continue
            if getattr(self, key) % mp:
                raise ConfigError(f"config key '{key}': {getattr(self, key)} is not divisible by "
                                  f"parallel.model_parallel={mp}")
        if (self.num_layers + 1) < p["pipeline_stage"]:
            raise ConfigError(f"config key 'parallel.pipeline_stage': {p['pipeline_stage']} stages for "
                              f"{self.num_layers + 1} layers")
        if p["pipeline_stage"] > 1 and p["micro_batch_num"] < p["pipeline_stage"]:
            raise ConfigError(f"config key 'parallel.micro_batch_num': {p['micro_batch_num']} must be >= "
                              f"pipeline_stage {p['pipeline_stage']}")
        if self.batch_size % p["data_parallel"]:
            raise ConfigError(f"config key 'batch_size': {self.batch_size} is not divisible by "
                              f"parallel.data_parallel={p['data_parallel']}")
        return self

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name, **overrides):
        """`300m` (the released model) or `tiny` (tests and CPU demos), with keyword overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        values = dict(PRESETS[name])
        if name == "300m" and "vocab_size" not in overrides:
            values["vocab_size"] = RELEASED_VOCAB_SIZES[overrides.get("separation", "none")]
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes):
        """A validated copy with some fields changed."""
        values = self.to_model_dict()
        values.update(changes)
        return type(self)(**values)

    def to_model_dict(self):
        """Plain dict of this config's own fields (no mindformers bookkeeping)."""
        keys = ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_hidden_size", "max_position_embeddings",
                "seq_length", "batch_size", "embedding_dropout", "hidden_dropout", "attention_dropout",
                "layernorm_epsilon", "initializer_range", "separation", "compute_dtype", "param_init_type",
                "softmax_compute_type", "pad_token_id", "eos_token_id", "objective", "activation")
        out = {key: getattr(self, key) for key in keys}
        out["parallel"] = copy.deepcopy(self.parallel)
        return out

    # ------------------------------------------------------------------ HF config.json
    @classmethod
    def from_hf_dict(cls, hf, source="config.json", **overrides):
        """Build from the released HF `config.json` contents; missing/invalid keys name the file and key."""
        required = ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size")
        for key in required:
            if key not in hf:
                raise ConfigError(f"{source}: missing key '{key}'")
        activation = hf.get("activation_function", "gelu")
        if activation != "gelu":
            raise ConfigError(f"{source}: key 'activation_function' is {activation!r}; the model uses exact 'gelu'")
        n_inner = hf.get("n_inner") or 4 * hf["n_embd"]
        values = dict(
            vocab_size=hf["vocab_size"], hidden_size=hf["n_embd"], num_layers=hf["n_layer"], num_heads=hf["n_head"],
            ffn_hidden_size=n_inner, max_position_embeddings=hf["n_positions"],
            seq_length=min(hf["n_positions"], hf.get("n_ctx", hf["n_positions"])),
            layernorm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
            embedding_dropout=hf.get("embd_pdrop", 0.1), hidden_dropout=hf.get("resid_pdrop", 0.1),
            attention_dropout=hf.get("attn_pdrop", 0.1), initializer_range=hf.get("initializer_range", 0.02),
            separation=hf.get("separation", _guess_separation(hf["vocab_size"])),
        )
        for ours, key in (("pad_token_id", "pad_token_id"), ("eos_token_id", "eot_token_id")):  # not HF's eos, </s>
            if isinstance(hf.get(key), int) and not isinstance(hf[key], bool):
                values[ours] = hf[key]
        if "objective" in hf:
            values["objective"] = hf["objective"]
        values.update(overrides)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_hf_json(cls, path, **overrides):
        path = os.fspath(path)
        hf = load_json(path, ConfigError, what="config.json")
        if not isinstance(hf, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        if "objective" not in hf and "-prefix-" in os.path.basename(os.path.dirname(os.path.abspath(path))):
            overrides.setdefault("objective", "prefix_code")  # the released `*-prefix-*` dirs, as geneval.sh decides
        return cls.from_hf_dict(hf, source=path, **overrides)

    def to_hf_dict(self, torch_dtype="float32"):
        """The released checkpoints' `config.json` contents (bos 1 and eos 2 as they have; `torch_dtype`: that of the
        weights written), then the keys this project needs to load a checkpoint without tokenizer files beside it:
        "separation" (the map is checked against it; only the released vocabulary sizes imply it), "eot_token_id"
        (where generation stops, <eot>: config.json's eos is </s>) and "pad_token_id" (<pad>: generation's padding).
        The reference's config class keeps unknown keys as attributes and uses none of these."""
        if torch_dtype not in DTYPES:
            raise ConfigError(f"torch_dtype: expected one of {DTYPES}, got {torch_dtype!r}")
        if self.activation != "gelu":
            raise ConfigError(f"config key 'activation': {self.activation!r} cannot be exported to the HF layout, "
                              f"whose config.json (activation_function) and PyTorch code use the exact 'gelu'")
        return {
            "architectures": ["PanguAlphaModel"],
            "model_type": "gpt2",
            "activation_function": "gelu",
            "n_embd": self.hidden_size,
            "n_layer": self.num_layers,
            "n_head": self.num_heads,
            "n_inner": self.ffn_hidden_size,
            "n_positions": self.max_position_embeddings,
            "n_ctx": self.max_position_embeddings,
            "vocab_size": self.vocab_size,
            "layer_norm_epsilon": self.layernorm_epsilon,
            "embd_pdrop": self.embedding_dropout,
            "resid_pdrop": self.hidden_dropout,
            "attn_pdrop": self.attention_dropout,
            "initializer_range": self.initializer_range,
            "scale_attn_weights": True,
            "bos_token_id": HF_BOS_TOKEN_ID,
            "eos_token_id": HF_EOS_TOKEN_ID,
            "torch_dtype": torch_dtype,
            "separation": self.separation,
            "eot_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "objective": self.objective,
        }

    def save_hf_json(self, path, torch_dtype="float32"):
        """Write `to_hf_dict(torch_dtype)` to `path`, atomically."""
        atomic_write_json(path, self.to_hf_dict(torch_dtype))


def _guess_separation(vocab_size):
    for name, size in RELEASED_VOCAB_SIZES.items():
        if size == vocab_size:
            return name
    return "none"
