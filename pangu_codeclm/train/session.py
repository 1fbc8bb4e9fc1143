"""One training run through the mindformers Trainer: config → context → resume point → network → dataset → Trainer.

`run_training(...)` is what `train.py` and `pangu-codeclm train` call.
"""
import logging
import os

from . import checkpoint as ckpt_lib
from .pretrained import load_pretrained
from .callbacks import CheckpointCallback, TrainMonitor, ValidationLoss
from .context import apply_parallel, build_run_context, device_count, load_run_config, model_config_from

logger = logging.getLogger(__name__)


def _build_network(cfg, model_config, resume):
    from mindformers.tools.register import MindFormerModuleType, MindFormerRegister
    arch = cfg.model.arch.type
    cls = MindFormerRegister.get_cls(MindFormerModuleType.MODELS, arch)
    separation_map = None
    map_path = cfg.pangu.separation_map or _map_from_dataset(cfg, model_config)
    if model_config.separation != "none" and not map_path:
        raise ValueError(f"{cfg.config_path}: model.model_config.separation is {model_config.separation!r} but no "
                         f"pangu.separation_map is given (and the dataset's tokenizer has none)")
    if map_path:
        from ..io_utils import load_int_map_pickle
        separation_map = load_int_map_pickle(map_path)
        logger.info("separation map: %d entries from %s", len(separation_map), map_path)
    network = cls(model_config, separation_map=separation_map)
    if cfg.pangu.pretrained and not resume:
        load_pretrained(network, cfg.pangu.pretrained, separation_map, model_config.pad_token_id)
    return network


def _dataset_meta(cfg):
    """(path of the dataset's meta.json, its contents), or (None, {}) when the dataset is not a prepared directory."""
    from ..data.mindrecord import META_NAME, dataset_info
    files = cfg.train_dataset.dataset_files
    first = files[0] if isinstance(files, list) else files
    if not isinstance(first, str) or not os.path.isfile(os.path.join(first, META_NAME)):
        return None, {}
    return os.path.join(first, META_NAME), dataset_info(first)


def _map_from_dataset(cfg, model_config):
    """The separation map of the tokenizer recorded in the dataset's meta.json, if any."""
    from ..tokenization.base import SEPARATION_MAP_FILE
    if model_config.separation == "none":
        return ""
    tok = _dataset_meta(cfg)[1].get("tokenizer")
    path = os.path.join(tok, SEPARATION_MAP_FILE) if tok else ""
    return path if path and os.path.isfile(path) else ""


def global_batch_size(cfg):
    """Rows per optimizer step over all ranks."""
    rc = cfg.runner_config
    if int(rc.get("gradient_accumulation_steps") or 1) != 1:
        raise ValueError(f"{cfg.config_path}: runner_config.gradient_accumulation_steps must be 1 (not supported by "
                         f"PanguTrainOneStepCell); raise batch_size or the data-parallel degree instead")
    data_parallel = cfg.parallel_config["data_parallel"]
    micro = cfg.parallel_config["micro_batch_num"] if cfg.parallel_config["pipeline_stage"] > 1 else 1
    return int(rc.batch_size) * data_parallel * micro


def resolve_train_steps(cfg, gbs):
    """pangu.train_steps, or training rows (without the validation rows) x pangu.epochs // global batch when -1."""
    steps = int(cfg.pangu.train_steps)
    if steps == -1:
        from ..data.mindrecord import dataset_info
        from .dataset import split_rows
        rows = int(dataset_info(cfg.train_dataset.dataset_files)["rows"])
        train_rows = len(split_rows(rows, float(cfg.pangu.validation_fraction))[0])
        steps = train_rows * int(cfg.pangu.epochs) // gbs
        logger.info("pangu.train_steps = %d training rows x %s epochs // global batch %d = %d", train_rows,
                    cfg.pangu.epochs, gbs, steps)
    if steps <= 0:
        raise ValueError(f"{cfg.config_path}: pangu.train_steps must be positive (or -1 with enough rows), "
                         f"got {steps}")
    return steps


def check_data_matches(cfg, model_config):
    """The dataset's meta.json (objective, seq_length, vocab_size, separation, and the tokenizer's <pad> and <eot> ids)
    must agree with the model config."""
    path, meta = _dataset_meta(cfg)
    for key in ("objective", "seq_length", "vocab_size", "separation", "pad_token_id", "eos_token_id"):
        if key in meta and meta[key] != getattr(model_config, key):
            raise ValueError(f"{path}: '{key}' is {meta[key]!r} but the config's "
                             f"model.model_config.{key} is {getattr(model_config, key)!r}")


def corruption_settings(cfg, model_config):
    """Corrupt Code CLM: the dataset meta's `corruption` entry (mask id, random-id range), else None."""
    if model_config.objective != "corrupt_code":
        return None
    path, meta = _dataset_meta(cfg)
    if not meta.get("corruption"):
        raise ValueError(f"{path or cfg.train_dataset.dataset_files}: objective corrupt_code needs the dataset's "
                         f"'corruption' entry (mask id, random-id range) in meta.json; prepare the data again with "
                         f"`pangu-codeclm prepare --objective corrupt_code`")
    return {"mask_id": int(meta["corruption"]["mask_id"]), "random_high": int(meta["corruption"]["random_high"])}


def run_training(config_path, device_target=None, resume=False, output_dir=None, overrides=None,
                 extra_modules=(), callbacks=()):
    """Train as the yaml says; returns {'output_dir', 'start_step', 'final_step', 'metrics', 'last_checkpoint'} (and
    'network' when it trained)."""
    from .register import register_all
    register_all(extra_modules)
    cfg = load_run_config(config_path, device_target, output_dir, overrides)
    model_config = model_config_from(cfg)
    check_data_matches(cfg, model_config)
    corruption = corruption_settings(cfg, model_config)
    from .optim import WEIGHT_DECAY_PARAMS
    if cfg.pangu.weight_decay_params not in WEIGHT_DECAY_PARAMS:
        raise ValueError(f"{cfg.config_path}: pangu.weight_decay_params must be one of {WEIGHT_DECAY_PARAMS}, "
                         f"got {cfg.pangu.weight_decay_params!r}")
    apply_parallel(cfg, model_config, device_count())
    rank_id, rank_size = build_run_context(cfg)
    import mindspore as ms
    from mindformers import Trainer
    from mindformers.tools.register import MindFormerConfig

    out = cfg.output_dir  # made absolute by load_run_config
    gbs = global_batch_size(cfg)
    steps = resolve_train_steps(cfg, gbs)
    ckpt_dir = ckpt_lib.rank_dir(out, rank_id)
    peers = [d for d in (ckpt_lib.rank_dir(out, r) for r in range(rank_size) if r != rank_id) if os.path.isdir(d)]
    resume_info = ckpt_lib.find_resume_checkpoint(ckpt_dir, peers) if resume else None
    if resume and resume_info is None:
        logger.warning("--resume: no intact checkpoint in %s; starting from step 0", ckpt_dir)
    start_step = resume_info["step"] if resume_info else 0
    if resume_info and resume_info.get("total_steps", steps) != steps:
        raise ValueError(f"{resume_info['ckpt_path']}: saved by a run of {resume_info['total_steps']} steps, but "
                         f"pangu.train_steps is {steps}; the LR schedule would differ")
    if resume_info and resume_info.get("data_position", start_step * gbs) != start_step * gbs:
        raise ValueError(f"{resume_info['ckpt_path']}: saved at data position {resume_info['data_position']} "
                         f"(step {start_step}), but this run's global batch {gbs} puts step {start_step} at "
                         f"{start_step * gbs}; resume with the same batch size and device count")
    if start_step >= steps:
        logger.info("checkpoint at step %d already reaches pangu.train_steps=%d: nothing to do", start_step, steps)
        return {"output_dir": out, "start_step": start_step, "final_step": start_step, "metrics": [],
                "last_checkpoint": resume_info["ckpt_path"]}

    ms.set_seed(int(cfg.seed or 0))
    network = _build_network(cfg, model_config, resume_info is not None)
    cfg.train_dataset.update(steps=steps, start_step=start_step, seq_length=model_config.seq_length,
                             validation_fraction=float(cfg.pangu.validation_fraction), corruption=corruption)
    cfg.train_dataset_task = MindFormerConfig(type=cfg.train_dataset.get("type", "PanguCodeCLMDataset"),
                                              dataset_config=cfg.train_dataset)
    cfg.lr_schedule.total_steps = steps
    cfg.runner_config.epochs = 1
    cfg.runner_config.sink_mode = False
    cfg.callbacks = []
    cfg.model.model_config = MindFormerConfig(type=type(model_config).__name__, **model_config.to_model_dict())
    cfg.resume_training = False
    if cfg.runner_wrapper.type == "PanguTrainOneStepCell":
        cfg.runner_wrapper.log_code_loss = model_config.objective == "text_code"
    if not (cfg.get("trainer") or {}).get("type"):
        cfg.trainer = MindFormerConfig(type="PanguCodeCLMTrainer", model_name="pangu_codeclm")
    cfg.load_checkpoint = ""

    validator = None
    if int(cfg.pangu.eval_steps) > 0:
        from .dataset import validation_batches
        rows_per_call = gbs if cfg.parallel.get("full_batch") else int(cfg.runner_config.batch_size)
        batches = validation_batches(cfg.train_dataset.dataset_files, rows_per_call,
                                     float(cfg.pangu.validation_fraction),
                                     corruption=dict(corruption, seed=int(cfg.train_dataset.get("seed", 1234)))
                                     if corruption else None)
        validator = ValidationLoss(batches) if batches else None
        if validator is None:
            logger.warning("pangu.eval_steps=%s but no validation rows are held out (pangu.validation_fraction=%s)",
                           cfg.pangu.eval_steps, cfg.pangu.validation_fraction)
    monitor = TrainMonitor(out, steps, gbs * model_config.seq_length, start_step=start_step,
                           log_steps=cfg.pangu.log_steps, plot_steps=cfg.pangu.plot_steps,
                           code_loss_is_loss=model_config.objective != "text_code", rank_id=rank_id,
                           show_bar=bool(cfg.pangu.show_bar) and rank_id == 0, validator=validator,
                           eval_steps=cfg.pangu.eval_steps)
    saver = CheckpointCallback(ckpt_dir, steps, cfg.pangu.save_steps, keep=cfg.pangu.keep_checkpoints,
                               start_step=start_step, resume_info=resume_info, global_batch_size=gbs)
    if rank_id == 0:
        from ..checkpoints.files import MS_CONFIG
        from ..checkpoints.mindspore_dir import write_ms_config
        write_ms_config(os.path.join(out, MS_CONFIG), model_config)  # what `convert` needs with a .ckpt from here
    logger.info("training %s: steps %d..%d, global batch %d x %d tokens, rank %d/%d, output %s",
                cfg.config_path, start_step, steps, gbs, model_config.seq_length, rank_id, rank_size, out)
    trainer = Trainer(args=cfg, task="general", model=network, callbacks=[monitor, saver, *callbacks])
    trainer.train()
    last = ckpt_lib.list_checkpoints(ckpt_dir)
    return {"output_dir": out, "start_step": start_step, "final_step": steps, "metrics": monitor.rows,
            "last_checkpoint": ckpt_lib.ckpt_path(last[0][1]) if last else None, "network": network}
