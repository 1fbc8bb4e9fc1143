"""Run configuration and execution context: load the yaml, derive mindformers' parallel settings from the model
config's `parallel` section (the one source of truth), validate it, and initialise MindSpore (+ communication)."""
import logging
import os

logger = logging.getLogger(__name__)

DEVICE_TARGETS = ("CPU", "Ascend", "GPU")
# Keys of the `pangu` section of a run yaml (our own settings; mindformers ignores the section).
RUN_DEFAULTS = {
    "train_steps": 100,        # global optimizer steps of the whole run (the LR schedule spans them); -1: from epochs
    "epochs": 1,               # used when train_steps is -1: steps = rows * epochs // global batch
    "save_steps": 50,          # checkpoint every N steps (and at the last step)
    "keep_checkpoints": 3,     # keep the newest K checkpoints
    "log_steps": 1,
    "plot_steps": 20,          # redraw loss_curve.png every N steps
    "pretrained": "",          # checkpoint to start from (HF or MindSpore layout), empty = random init
    "separation_map": "",      # replicated_tokens_map.pkl for partial/full separation
    "show_bar": True,
    "validation_fraction": 0.001,  # packed rows held out as the reference does (train_test_split, seed 42)
    "eval_steps": 0,           # validation code-token loss every N steps (and at the last step); 0 = never
    "weight_decay_params": "all",  # all (the reference: DeepSpeed's one group) | except_bias_and_norm (mindformers)
}


BASE_CONFIG = "base_config"  # mindformers' key naming the yaml(s) a run yaml inherits from


def read_run_yaml(path, _chain=()):
    """A run yaml as a plain dict, its `base_config` resolved as mindformers' `MindFormerConfig` does: base paths
    relative to the file, a list of bases merged in order, the file's own keys merged over them (mappings key by key,
    other values replaced). No mindformers templates are applied; errors name the file."""
    import yaml
    path = os.fspath(path)
    if not os.path.isfile(path):
        where = f"{_chain[-1]}: {BASE_CONFIG} " if _chain else ""
        raise FileNotFoundError(f"{where}config file {path} does not exist")
    if os.path.realpath(path) in _chain:
        raise ValueError(f"{_chain[-1]}: {BASE_CONFIG} {path} inherits from itself")
    with open(path, encoding="utf-8") as f:
        try:
            tree = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML ({exc})") from None
    tree = {} if tree is None else tree
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a mapping of sections (model, runner_config, ...) at the top level")
    bases = tree.pop(BASE_CONFIG, None)
    if bases is None:
        return tree
    merged = {}
    for base in bases if isinstance(bases, list) else [bases]:
        if not isinstance(base, str):
            raise ValueError(f"{path}: {BASE_CONFIG} must be a file name or a list of them, got {base!r}")
        merged.update(read_run_yaml(os.path.join(os.path.dirname(path), base), _chain + (os.path.realpath(path),)))
    return _merge_over(tree, merged)


def _merge_over(top, base):
    """`base` with `top`'s keys merged over it (nested mappings key by key), as mindformers merges a base config."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge_over(value, out[key]) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def parse_overrides(items):
    """['a.b=1', ...] -> {'a.b': 1, ...} with YAML-typed values (the `--set KEY=VALUE` flags)."""
    import yaml
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_run_config(path, device_target=None, output_dir=None, overrides=None):
    """Read a run yaml into a MindFormerConfig, apply CLI overrides and check the keys we rely on."""
    from mindformers.tools.register import MindFormerConfig
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        cfg = MindFormerConfig(path)
    except AttributeError:  # the yaml is empty or not a mapping (MindFormerConfig calls .items() on it)
        raise ValueError(f"{path}: expected a mapping of sections (model, runner_config, ...) at the top level") from None
    for key in ("model", "runner_config", "train_dataset", "optimizer", "lr_schedule", "runner_wrapper"):
        if not cfg.get(key):
            raise ValueError(f"{path}: missing section '{key}'")
    if not cfg.model.get("model_config") or not cfg.model.get("arch"):
        raise ValueError(f"{path}: section 'model' needs 'model_config' and 'arch'")
    pangu = dict(RUN_DEFAULTS)
    unknown = sorted(set(cfg.get("pangu") or {}) - set(RUN_DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown key 'pangu.{unknown[0]}'; expected one of {sorted(RUN_DEFAULTS)}")
    pangu.update(cfg.get("pangu") or {})
    cfg.pangu = MindFormerConfig(**pangu)
    if device_target:
        if device_target not in DEVICE_TARGETS:
            raise ValueError(f"--device_target: expected one of {DEVICE_TARGETS}, got {device_target!r}")
        cfg.context.device_target = device_target
    if output_dir:
        cfg.output_dir = os.path.abspath(output_dir)
    for key, value in (overrides or {}).items():
        _set_dotted(cfg, key, value)
    cfg.config_path = os.path.abspath(path)
    _absolute_paths(cfg)
    return cfg


def _absolute_paths(cfg):
    """Make the yaml's relative data/checkpoint paths absolute against the launch directory.

    Launchers that change directory per device export PANGU_CODECLM_WORKDIR (the directory they were started in).
    """
    base = os.path.abspath(os.environ.get("PANGU_CODECLM_WORKDIR") or os.getcwd())

    def fix(value):
        if isinstance(value, str) and value and not os.path.isabs(value):
            return os.path.normpath(os.path.join(base, value))
        return value

    files = cfg.train_dataset.get("dataset_files")
    cfg.train_dataset.dataset_files = [fix(f) for f in files] if isinstance(files, list) else fix(files)
    cfg.pangu.pretrained = fix(cfg.pangu.pretrained)
    cfg.pangu.separation_map = fix(cfg.pangu.separation_map)
    cfg.output_dir = fix(cfg.get("output_dir") or "./output")


def _set_dotted(cfg, dotted, value):
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        if node.get(part) is None:
            raise ValueError(f"override {dotted}: no section '{part}'")
        node = node[part]
    node[parts[-1]] = value


def model_config_from(cfg):
    """The validated PanguCodeCLMConfig described by `model.model_config`."""
    from ..config import PanguCodeCLMConfig
    values = {k: v for k, v in dict(cfg.model.model_config).items() if k != "type"}
    values["parallel"] = dict(values.get("parallel") or {})
    return PanguCodeCLMConfig(**values)


def device_count():
    """Number of training processes of this launch (msrun / rank table env), 1 when standalone."""
    for key in ("MS_WORKER_NUM", "RANK_SIZE", "DEVICE_NUM"):
        if os.environ.get(key):
            return int(os.environ[key])
    return 1


def apply_parallel(cfg, model_config, device_num):
    """Fill mindformers' parallel sections from `model_config.parallel`; on Ascend check the layout first.

    CPU and single-device runs use plain data parallel (semi-auto parallel is refused on CPU); Ascend multi-device runs
    use semi-auto parallel with dp x mp x pp = device number, optimizer sharding and recompute from the config.
    """
    from mindformers.tools.register import MindFormerConfig
    p = model_config.parallel
    target = cfg.context.get("device_target", "Ascend")
    cfg.use_parallel = device_num > 1
    cfg.parallel = MindFormerConfig(**dict(cfg.get("parallel") or {}))
    if target == "Ascend" and device_num > 1:
        model_config.validate_parallel(device_num)
        # semi-auto parallel computes the loss over the whole global batch: no extra gradient averaging
        cfg.parallel.update(parallel_mode=1, full_batch=True, gradients_mean=False,
                            enable_parallel_optimizer=bool(p["optimizer_shard"]))
        cfg.parallel_config = MindFormerConfig(
            data_parallel=p["data_parallel"], model_parallel=p["model_parallel"], pipeline_stage=p["pipeline_stage"],
            micro_batch_num=p["micro_batch_num"], vocab_emb_dp=p["vocab_emb_dp"],
            gradient_aggregation_group=p["gradient_aggregation_group"])
        if p["pipeline_stage"] > 1:
            # pipelining needs mindformers' micro-batch pipeline cell (loss scaling + clipping included)
            logger.info("parallel.pipeline_stage=%d: runner_wrapper.type set to MFPipelineWithLossScaleCell",
                        p["pipeline_stage"])
            cfg.runner_wrapper.type = "MFPipelineWithLossScaleCell"
    else:
        if p["model_parallel"] > 1 or p["pipeline_stage"] > 1:
            logger.warning("parallel: model_parallel=%d, pipeline_stage=%d need Ascend semi-auto parallel; %s with "
                           "%d device(s) runs data parallel only", p["model_parallel"], p["pipeline_stage"], target,
                           device_num)
        # data parallel: each rank's loss is its shard's mean, so the all-reduce averages the gradients
        cfg.parallel.update(parallel_mode=0, full_batch=False, gradients_mean=True, enable_parallel_optimizer=False)
        cfg.parallel_config = MindFormerConfig(
            data_parallel=device_num, model_parallel=1, pipeline_stage=1, micro_batch_num=1, vocab_emb_dp=True,
            gradient_aggregation_group=p["gradient_aggregation_group"])
    cfg.recompute_config = MindFormerConfig(**dict(cfg.get("recompute_config") or {}))
    cfg.recompute_config["recompute"] = bool(p["recompute"])
    return cfg


def build_run_context(cfg):
    """Initialise MindSpore through mindformers' `build_context` (GRAPH mode; communication when use_parallel)."""
    from mindformers import build_context
    ctx_cfg = {"context": dict(cfg.context), "parallel": dict(cfg.parallel),
               "parallel_config": dict(cfg.parallel_config), "use_parallel": cfg.use_parallel}
    if cfg.context.get("mode") in (0, "GRAPH_MODE"):
        ctx_cfg["context"]["mode"] = "GRAPH_MODE"
    build_context(ctx_cfg)
    from mindformers.tools.utils import get_real_group_size, get_real_rank
    return get_real_rank(), get_real_group_size()
