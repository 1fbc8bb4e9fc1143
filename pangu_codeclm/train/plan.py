"""`pangu-codeclm plan`: per-device memory and communication of a config on N devices, and whether it fits; with
`--lr-out FILE.json --train-steps N`, the LR the optimizer uses at each step 0..N of the config's schedule.

The model is counted exactly from the config (embeddings, 24+1 blocks, top query layer). Memory per device:
fp32 master weights and AdamW moments (fp32 m, v) — both divided by dp with optimizer sharding, as MindSpore's parallel
optimizer slices parameters and states —, full fp32 gradients, a compute-dtype copy of the weights, activations
(Korthikanti et al. 2022 per-layer formula without sequence parallelism; with full recompute only each layer's input is
kept, plus one layer's working set), and the fp32 logits / softmax / gradient.
Communication per step per device: data-parallel gradient all-reduce (or reduce-scatter + all-gather with optimizer
sharding), model-parallel activation all-reduces (2 forward + 2 backward per layer per micro-batch) and pipeline sends.
Ring collectives move 2(n-1)/n of the buffer per device. Estimates, meant for choosing a layout, not for byte accuracy.
"""
import math
import os

from ..families import family_for
from ..families.pangu_alpha import PANGU_ALPHA
from .context import read_run_yaml

GIB = 1024 ** 3
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# The family's released-scale architectures (num_layers excludes the top query layer).
PRESETS = {name: arch for name, arch in PANGU_ALPHA.architectures.items() if name != "tiny"}
RESERVE = 0.10   # workspace, fragmentation, HCCL buffers


def parameter_counts(c):
    """(embedding params, params of one block, params of the top query layer, final LN), from the family's layout."""
    family = family_for(c)
    return tuple(family.parameter_count(c, part) for part in ("embedding", "block", "top", "final"))


def plan(config, device_num, batch_size, device_memory_gb=32.0):
    """Estimate for `config` (PanguCodeCLMConfig, layout in config.parallel) on `device_num` devices.

    `batch_size` is rows per data-parallel rank per step (split into micro_batch_num micro-batches with pipelining).
    """
    config.validate_parallel(device_num)
    p = config.parallel
    dp, mp, pp = p["data_parallel"], p["model_parallel"], p["pipeline_stage"]
    micro = p["micro_batch_num"] if pp > 1 else 1
    h, s, a, v = config.hidden_size, config.seq_length, config.num_heads, config.vocab_size
    cbytes = DTYPE_BYTES[config.compute_dtype]
    emb, block, top, ln_f = parameter_counts(config)
    layers = family_for(config).cached_layers(config)   # the blocks and the top query layer
    total_params = family_for(config).parameter_count(config)
    layers_per_stage = math.ceil(layers / pp)
    emb_dev = emb if p["vocab_emb_dp"] else emb / mp
    # the first stage holds the embeddings; with pp > 1 the last stage holds the tied head's copy as well
    params_dev = layers_per_stage * block / mp + emb_dev + ln_f
    shard = dp if p["optimizer_shard"] else 1
    weights = 4 * params_dev / shard
    grads = 4 * params_dev
    optimizer = 8 * params_dev / shard
    compute_copy = cbytes * params_dev if cbytes != 4 else 0
    mb = batch_size // micro
    in_flight = min(micro, pp)
    per_layer_full = s * mb * h * (10 + 24 / mp + 5 * a * s / (h * mp)) * (cbytes / 2)
    per_layer_input = s * mb * h * cbytes
    act_full = per_layer_full * layers_per_stage * in_flight
    act_recompute = per_layer_input * layers_per_stage * in_flight + per_layer_full
    logits = 3 * 4 * mb * s * v / (1 if p["vocab_emb_dp"] else mp)
    static = weights + grads + optimizer + compute_copy
    usable = device_memory_gb * GIB * (1 - RESERVE)
    ring = lambda n: 2 * (n - 1) / n if n > 1 else 0.0  # noqa: E731
    comm_dp = ring(dp) * grads
    comm_mp = 4 * layers_per_stage * micro * ring(mp) * mb * s * h * cbytes
    comm_pp = (2 * micro * mb * s * h * cbytes) if pp > 1 else 0.0
    return {
        "device_num": device_num, "dp": dp, "mp": mp, "pp": pp, "micro_batch_num": micro, "batch_size": batch_size,
        "global_batch": batch_size * dp, "seq_length": s, "total_params": total_params, "params_per_device": params_dev,
        "weights": weights, "grads": grads, "optimizer": optimizer, "compute_copy": compute_copy,
        "activations": act_full, "activations_recompute": act_recompute, "logits": logits,
        "total": static + act_full + logits, "total_recompute": static + act_recompute + logits,
        "recompute": p["recompute"], "optimizer_shard": p["optimizer_shard"], "usable": usable,
        "device_memory_gb": device_memory_gb, "comm_dp": comm_dp, "comm_mp": comm_mp, "comm_pp": comm_pp,
        "fits": (static + (act_recompute if p["recompute"] else act_full) + logits) <= usable,
        "fits_without_recompute": static + act_full + logits <= usable,
        "fits_with_recompute": static + act_recompute + logits <= usable,
    }


def format_plan(r, name=""):
    g = lambda x: f"{x / GIB:8.2f} GiB"  # noqa: E731
    chosen = r["total_recompute"] if r["recompute"] else r["total"]
    lines = [
        f"plan {name}: {r['device_num']} devices = dp {r['dp']} x mp {r['mp']} x pp {r['pp']}"
        f" (micro-batches {r['micro_batch_num']}), {r['batch_size']} rows/dp-rank, global batch {r['global_batch']}"
        f" x {r['seq_length']} tokens",
        f"  parameters          {r['total_params'] / 1e6:10.1f} M total, {r['params_per_device'] / 1e6:.1f} M per device",
        f"  weights (fp32)      {g(r['weights'])}" + ("  (sharded over dp)" if r["optimizer_shard"] else ""),
        f"  gradients (fp32)    {g(r['grads'])}",
        f"  optimizer (AdamW)   {g(r['optimizer'])}" + ("  (sharded over dp)" if r["optimizer_shard"] else ""),
        f"  compute-dtype copy  {g(r['compute_copy'])}",
        f"  activations         {g(r['activations'])} without recompute, {g(r['activations_recompute']).strip()}"
        " with recompute",
        f"  logits/softmax/grad {g(r['logits'])}",
        f"  total               {g(r['total'])} without recompute, {g(r['total_recompute']).strip()} with recompute",
        f"  communication/step  dp {g(r['comm_dp']).strip()}, mp {g(r['comm_mp']).strip()}, "
        f"pp {g(r['comm_pp']).strip()} per device",
        f"  device memory       {r['device_memory_gb']:.0f} GB, {g(r['usable']).strip()} usable after {RESERVE:.0%} reserve",
        f"  verdict             {'FITS' if r['fits'] else 'DOES NOT FIT'} with recompute "
        f"{'on' if r['recompute'] else 'off'} ({g(chosen).strip()}); without recompute: "
        f"{'fits' if r['fits_without_recompute'] else 'does not fit'}, with recompute: "
        f"{'fits' if r['fits_with_recompute'] else 'does not fit'}",
    ]
    return "\n".join(lines)


def _load(config_arg):
    """(PanguCodeCLMConfig, rows per dp rank, name) from a run yaml or a preset name (300m, 2.6b, 13b)."""
    from ..config import PanguCodeCLMConfig
    key = config_arg.lower()
    if key in PRESETS:
        cfg = PanguCodeCLMConfig(vocab_size=32013, seq_length=1024, compute_dtype="float16", **PRESETS[key])
        return cfg, 8, key
    if not os.path.isfile(config_arg):
        raise FileNotFoundError(f"--config {config_arg}: not a file nor one of {sorted(PRESETS)}")
    run = read_run_yaml(config_arg)
    try:
        values = {k: v for k, v in run["model"]["model_config"].items() if k != "type"}
        batch = int(run["runner_config"]["batch_size"])
    except (KeyError, TypeError):
        raise ValueError(f"{config_arg}: expected model.model_config and runner_config.batch_size") from None
    return PanguCodeCLMConfig(**values), batch, os.path.basename(config_arg)


def write_lr_list(config_arg, train_steps, out_path):
    """Write the LR of optimizer steps 0..train_steps (a JSON list of train_steps + 1 floats) for a run yaml's
    `lr_schedule`; return the list."""
    from ..io_utils import atomic_write_json
    from .lr import lr_values_from_config
    if not os.path.isfile(config_arg):
        raise FileNotFoundError(f"--config {config_arg}: --lr-out needs a run yaml with an lr_schedule section")
    run = read_run_yaml(config_arg)
    section = run.get("lr_schedule") if isinstance(run, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"{config_arg}: no lr_schedule section")
    if train_steps is None or train_steps < 1:
        raise ValueError(f"--train-steps: a positive number of optimizer steps is needed with --lr-out, "
                         f"got {train_steps}")
    values = lr_values_from_config(section, train_steps, where=f"{config_arg}: lr_schedule")
    atomic_write_json(out_path, values, indent=None)
    return values


def configure(config_arg, device_num, layout=None, batch_size=None, micro_batch_num=None, recompute=None,
              optimizer_shard=None):
    """(config, rows per dp rank, name) of a run yaml or preset with the plan's options applied: `layout` "DP,MP,PP"
    (a preset's default: DP = devices), `recompute` / `optimizer_shard` booleans or None (the config's)."""
    from ..config import ConfigError
    cfg, batch, name = _load(config_arg)
    par = dict(cfg.parallel)
    if layout:
        try:
            dp, mp, pp = (int(x) for x in layout.split(","))
        except ValueError:
            raise ConfigError(f"--layout {layout!r}: expected DP,MP,PP") from None
        par.update(data_parallel=dp, model_parallel=mp, pipeline_stage=pp)
    elif config_arg.lower() in PRESETS:
        par.update(data_parallel=device_num)
    if micro_batch_num:
        par["micro_batch_num"] = micro_batch_num
    if recompute is not None:
        par["recompute"] = recompute
    if optimizer_shard is not None:
        par["optimizer_shard"] = optimizer_shard
    batch = batch_size or batch
    return cfg.replace(parallel=par, batch_size=batch * par["data_parallel"]), batch, name
