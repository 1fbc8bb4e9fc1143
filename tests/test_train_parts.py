"""Training building blocks in-process: the wrapper's outputs (loss, overflow, scale, lr, grad norm, code-token loss),
overflow skipping, the shipped yaml configs, embedding growth for separation."""
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny(**kw):
    from pangu_codeclm.config import PanguCodeCLMConfig
    values = dict(vocab_size=64, hidden_size=16, num_layers=1, num_heads=2, ffn_hidden_size=32,
                  max_position_embeddings=16, seq_length=16, embedding_dropout=0.0, hidden_dropout=0.0,
                  attention_dropout=0.0)
    values.update(kw)
    return PanguCodeCLMConfig(**values)


def _batch(seed=0):
    import mindspore as ms
    from pangu_codeclm.data.packing import expand_row
    from pangu_codeclm.train.synthetic import synthetic_rows
    rows = [expand_row(r.input_ids, r.labels, r.docstr_mask, r.segment_lengths, r.prefix_lengths)
            for r in synthetic_rows(2, 16, 64, segments=2, doc_len=3, seed=seed)]
    cols = [np.stack(c) for c in zip(*rows)]
    return cols, [ms.Tensor(c) for c in cols]


def test_wrapper_outputs_and_code_loss(ms_cpu):
    import mindspore as ms
    from mindformers.core.optim import AdamW
    from pangu_codeclm.model.pangu import PanguCodeCLMForCausalLM
    from pangu_codeclm.train.wrapper import PanguTrainOneStepCell
    ms.set_seed(0)
    net = PanguCodeCLMForCausalLM(_tiny(objective="text_code"))
    cols, batch = _batch()
    batch[1] = ms.Tensor(cols[0].copy())        # Text-Code CLM: every token is a target
    labels = cols[0].copy()
    labels[cols[4] > 0] = -100
    expected_code = float(net(batch[0], ms.Tensor(labels), batch[2], batch[3], batch[4]).asnumpy())
    expected_loss = float(net(*batch).asnumpy())
    before = net.transformer.wte.weight.asnumpy().copy()
    opt = AdamW(net.trainable_params(), learning_rate=1e-2)
    cell = PanguTrainOneStepCell(net, opt, use_clip_grad=True, max_grad_norm=1.0, scale_sense=1.0,
                                 log_code_loss=True)
    cell.set_train(True)
    loss, overflow, scale, lr, norm, code_loss = cell(*batch)
    assert float(loss.asnumpy()) == pytest.approx(expected_loss, rel=1e-5)
    assert float(code_loss.asnumpy()) == pytest.approx(expected_code, rel=1e-5)
    assert abs(expected_code - expected_loss) > 1e-4   # docstring tokens really were excluded
    assert not bool(overflow.asnumpy()) and float(scale.asnumpy()) == 1.0
    assert float(lr.asnumpy().reshape(-1)[0]) == pytest.approx(1e-2) and float(norm.asnumpy().reshape(-1)[0]) > 0
    assert not np.array_equal(before, net.transformer.wte.weight.asnumpy())


def test_overflow_skips_the_update_and_lowers_the_dynamic_scale(ms_cpu):
    import mindspore as ms
    from mindformers.core.optim import AdamW
    from mindspore import nn
    from pangu_codeclm.model.pangu import PanguCodeCLMForCausalLM
    from pangu_codeclm.train.wrapper import PanguTrainOneStepCell
    net = PanguCodeCLMForCausalLM(_tiny())
    _, batch = _batch(1)
    opt = AdamW(net.trainable_params(), learning_rate=1e-2)
    manager = nn.DynamicLossScaleUpdateCell(loss_scale_value=2.0 ** 10, scale_factor=2, scale_window=1000)
    cell = PanguTrainOneStepCell(net, opt, scale_sense=manager)
    cell.set_train(True)
    net.transformer.wte.weight.set_data(ms.Tensor(np.full((64, 16), np.inf, np.float32)))   # poison -> inf grads
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    _, overflow, scale, _, _ = cell(*batch)
    assert bool(overflow.asnumpy())
    assert float(cell.scale_sense.asnumpy()) == 2.0 ** 9
    for p in net.trainable_params():
        np.testing.assert_array_equal(before[p.name], p.asnumpy(), err_msg=p.name)


@pytest.mark.parametrize("sep", ["none", "partial", "full"])
def test_paper_configs(sep):
    from pangu_codeclm.config import RELEASED_VOCAB_SIZES, PanguCodeCLMConfig
    from pangu_codeclm.train.context import read_run_yaml
    for suffix, devices in (("", 8), ("_16p", 16)):
        path = ROOT / "configs" / f"pangu_codeclm_300m_{sep}{suffix}.yaml"
        run = read_run_yaml(path)
        mc = {k: v for k, v in run["model"]["model_config"].items() if k != "type"}
        cfg = PanguCodeCLMConfig(**mc).validate_parallel(devices)
        assert cfg.vocab_size == RELEASED_VOCAB_SIZES[sep] and cfg.separation == sep
        assert (cfg.hidden_size, cfg.num_layers, cfg.seq_length) == (1024, 24, 1024)
        assert run["runner_config"]["batch_size"] * cfg.parallel["data_parallel"] == 64 == cfg.batch_size
        assert cfg.compute_dtype == "float16" and cfg.parallel["recompute"] and cfg.objective == "code"
        scale = run["runner_wrapper"]["scale_sense"]   # the reference's DeepSpeed fp16 settings
        assert (scale["type"], scale["loss_scale_value"], scale["scale_window"], scale["hysteresis"]) == \
            ("HysteresisLossScaleUpdateCell", 65536, 1000, 2)
        pangu = run["pangu"]                           # run_model.sh: 10 epochs, eval every 5000 steps
        assert (pangu["epochs"], pangu["train_steps"], pangu["eval_steps"], pangu["validation_fraction"],
                pangu["weight_decay_params"]) == (10, -1, 5000, 0.001, "all")
        assert run["runner_wrapper"]["max_grad_norm"] == 1.0 and run["context"]["device_target"] == "Ascend"
        lr, opt = run["lr_schedule"], run["optimizer"]
        assert (lr["type"], lr["learning_rate"], lr["lr_end"], lr["warmup_ratio"]) == \
            ("FlooredCosineWithWarmUpLR", 1e-5, 1e-6, 0.01)
        assert (opt["type"], opt["betas"], opt["eps"], opt["weight_decay"]) == ("AdamW", [0.9, 0.999], 1e-8, 0.01)
        assert run["pangu"]["pretrained"] and (sep == "none") == (run["pangu"]["separation_map"] == "")


def test_ascend_parallel_context_comes_from_the_config(monkeypatch):
    from pangu_codeclm.config import ConfigError
    from pangu_codeclm.train.context import apply_parallel, load_run_config, model_config_from
    cfg = load_run_config(ROOT / "configs" / "pangu_codeclm_300m_partial_16p.yaml")
    mc = model_config_from(cfg)
    apply_parallel(cfg, mc, 16)
    assert cfg.use_parallel and cfg.parallel.parallel_mode == 1 and cfg.parallel.full_batch
    assert cfg.parallel.enable_parallel_optimizer and cfg.parallel_config.data_parallel == 16
    assert cfg.recompute_config.recompute is True
    with pytest.raises(ConfigError, match="= 16 but 8 devices are used"):
        apply_parallel(load_run_config(ROOT / "configs" / "pangu_codeclm_300m_partial_16p.yaml"), mc, 8)
    tiny = load_run_config(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml", overrides={"pangu.train_steps": 3})
    apply_parallel(tiny, model_config_from(tiny), 2)
    assert tiny.parallel.parallel_mode == 0 and tiny.parallel.gradients_mean and tiny.parallel_config.data_parallel == 2
    pathlib.Path("bad.yaml").write_text((ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml").read_text()
                                        .replace("train_steps:", "steps:"))
    with pytest.raises(ValueError, match="bad.yaml: unknown key 'pangu.steps'"):
        load_run_config("bad.yaml")
    pathlib.Path("list.yaml").write_text("- model\n- optimizer\n")
    with pytest.raises(ValueError, match="list.yaml: expected a mapping of sections"):
        load_run_config("list.yaml")


def test_expand_embedding_copies_source_rows():
    from pangu_codeclm.train.pretrained import expand_embedding
    wte = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    init = np.full((7, 3), -5, np.float32)
    out = expand_embedding(wte, 7, {1: 4, 3: 6, 5: 5}, pad_id=2, init=init)
    np.testing.assert_array_equal(out[:2], wte[:2])
    np.testing.assert_array_equal(out[2], 0)          # <pad> zeroed
    np.testing.assert_array_equal(out[4], wte[1])
    np.testing.assert_array_equal(out[6], wte[3])
    np.testing.assert_array_equal(out[5], init[5])    # new token without a source row keeps its init
    with pytest.raises(ValueError, match="more than the config's vocab_size"):
        expand_embedding(wte, 3, {}, 0)


def test_train_steps_from_epochs(tmp_path):
    from pangu_codeclm.train.context import load_run_config
    from pangu_codeclm.train.session import resolve_train_steps
    from pangu_codeclm.train.synthetic import write_synthetic_dataset
    write_synthetic_dataset(tmp_path / "d", num_rows=50, seq_length=16, vocab_size=64)
    cfg = load_run_config(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml",
                          overrides={"pangu.train_steps": -1, "pangu.epochs": 3,
                                     "train_dataset.dataset_files": str(tmp_path / "d")})
    assert resolve_train_steps(cfg, gbs=8) == (50 - 1) * 3 // 8   # one row held out for validation
    cfg.pangu.epochs = 0
    with pytest.raises(ValueError, match="pangu.train_steps must be positive"):
        resolve_train_steps(cfg, gbs=8)


def test_interrupted_save_leftovers_are_cleaned(tmp_path, caplog):
    from pangu_codeclm.train import checkpoint as ck
    leftover = tmp_path / ".step_00000004.ckpt.abc123.tmp.ckpt"
    leftover.write_bytes(b"partial")
    with caplog.at_level("WARNING"):
        assert ck.find_resume_checkpoint(str(tmp_path)) is None
    assert not leftover.exists() and str(leftover) in caplog.text


def test_dataset_meta_must_match_the_model_config(tmp_path):
    from pangu_codeclm.data.mindrecord import write_dataset
    from pangu_codeclm.train.context import load_run_config, model_config_from
    from pangu_codeclm.train.session import check_data_matches
    from pangu_codeclm.train.synthetic import synthetic_rows
    write_dataset(synthetic_rows(4, 128, 32013), tmp_path / "d", 128,
                  meta={"objective": "text_code", "vocab_size": 32013, "separation": "none"})
    cfg = load_run_config(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml",
                          overrides={"train_dataset.dataset_files": str(tmp_path / "d")})
    with pytest.raises(ValueError, match=r"meta.json: 'objective' is 'text_code' but the config's "
                                         r"model.model_config.objective is 'code'"):
        check_data_matches(cfg, model_config_from(cfg))
    cfg.model.model_config.objective = "text_code"
    check_data_matches(cfg, model_config_from(cfg))


def test_separation_map_reaches_the_network(tmp_path, ms_cpu):
    from pangu_codeclm.io_utils import save_int_map_pickle
    from pangu_codeclm.train.context import load_run_config, model_config_from
    from pangu_codeclm.train.register import register_all
    from pangu_codeclm.train.session import _build_network
    register_all()
    small = {"model.model_config.vocab_size": 64, "model.model_config.hidden_size": 16,
             "model.model_config.ffn_hidden_size": 32, "model.model_config.separation": "partial",
             "model.model_config.num_layers": 1}
    cfg = load_run_config(ROOT / "configs" / "pangu_codeclm_tiny_cpu.yaml", overrides=small)
    with pytest.raises(ValueError, match="separation is 'partial' but no pangu.separation_map"):
        _build_network(cfg, model_config_from(cfg), resume=False)
    save_int_map_pickle(tmp_path / "map.pkl", {5: 60, 7: 61})
    cfg.pangu.separation_map = str(tmp_path / "map.pkl")
    net = _build_network(cfg, model_config_from(cfg), resume=False)
    assert net.separation_map == {5: 60, 7: 61}
    code = net.code_vocabulary()
    assert code[60] == 1 and code[5] == 0


def test_train_cli_reports_bad_input_without_a_traceback():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", "missing.yaml"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "error: config file missing.yaml does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" /
                           "pangu_codeclm_tiny_cpu.yaml"), "--set", "nonsense"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "--set 'nonsense': expected KEY=VALUE" in proc.stderr


def test_step_outputs_are_read_by_name():
    from pangu_codeclm.train.wrapper import STEP_OUTPUTS, name_step_outputs
    assert STEP_OUTPUTS[0] == "loss" and STEP_OUTPUTS[-1] == "code_loss"
    assert name_step_outputs(0.5) == {"loss": 0.5}  # a bare network's output is its loss
    assert name_step_outputs((1.0, False, 2.0, 3e-4, 0.7)) == {
        "loss": 1.0, "overflow": False, "loss_scale": 2.0, "learning_rate": 3e-4, "global_norm": 0.7}
    assert name_step_outputs((1.0, False, 2.0, 3e-4, 0.7, 0.9))["code_loss"] == 0.9
    with pytest.raises(ValueError, match="7 outputs; expected at most 6"):
        name_step_outputs(tuple(range(7)))
