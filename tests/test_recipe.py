"""The reference's training recipe: LR schedule (against ../shared/data/reference/lr_schedule.json, in `plan --lr-out`
and as applied by the mindformers optimizer), weight decay on every parameter, DeepSpeed's loss-scale hysteresis,
the validation split, dynamic resumable corruption, pretrained-embedding growth and the default partial token list."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_DATA

ROOT = pathlib.Path(__file__).resolve().parents[1]
LR_FIXTURE = SHARED_DATA / "reference" / "lr_schedule.json"
CONFIG_300M = ROOT / "configs" / "pangu_codeclm_300m_none.yaml"


@pytest.fixture(scope="module")
def lr_reference():
    if not LR_FIXTURE.exists():
        pytest.skip(f"reference LR fixture not found at {LR_FIXTURE}")
    ref = json.loads(LR_FIXTURE.read_text())
    assert sorted(s["num_training_steps"] for s in ref["schedules"]) == [137, 1000]
    return ref


def test_lr_values_equal_the_reference(lr_reference):
    from pangu_codeclm.train.lr import lr_values, warmup_steps_for
    for s in lr_reference["schedules"]:
        total = s["num_training_steps"]
        assert warmup_steps_for(total, 0.01) == s["num_warmup_steps"]
        ours = lr_values(lr_reference["learning_rate"], total, 0.01, lr_reference["min_learning_rate"])
        assert len(ours) == len(s["lr"]) == total + 1
        np.testing.assert_allclose(ours, s["lr"], rtol=1e-6, atol=0)
        assert ours[0] == 0.0 and min(ours[s["num_warmup_steps"]:]) == pytest.approx(1e-6)


def _plan(*args):
    return subprocess.run([sys.executable, "-m", "pangu_codeclm.cli", "plan", *args], capture_output=True,
                          text=True, timeout=300)


def test_plan_lr_out_writes_the_reference_list(lr_reference, tmp_path):
    for s in lr_reference["schedules"]:
        out = tmp_path / f"lr_{s['num_training_steps']}.json"
        proc = _plan("--config", str(CONFIG_300M), "--train-steps", str(s["num_training_steps"]), "--lr-out", str(out))
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(json.loads(out.read_text()), s["lr"], rtol=1e-6, atol=0)
    other = tmp_path / "other.yaml"
    other.write_text(f"base_config: {CONFIG_300M}\nlr_schedule:\n  type: CosineWithWarmUpLR\n")  # one key changed
    proc = _plan("--config", str(other), "--train-steps", "10", "--lr-out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "lr_schedule.type is 'CosineWithWarmUpLR'" in proc.stderr
    proc = _plan("--config", str(CONFIG_300M), "--lr-out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "--train-steps: a positive number" in proc.stderr
    proc = _plan("--config", str(CONFIG_300M))
    assert proc.returncode == 2 and "--devices is required" in proc.stderr


def _run_config(weight_decay_params="all", total_steps=137):
    from mindformers.tools.register import MindFormerConfig

    from pangu_codeclm.train.context import read_run_yaml
    run = read_run_yaml(CONFIG_300M)
    run["lr_schedule"]["total_steps"] = total_steps
    run["optimizer"]["weight_decay"] = 0.0 if weight_decay_params == "none" else 0.01
    return MindFormerConfig(lr_schedule=run["lr_schedule"], optimizer=run["optimizer"],
                            pangu={"weight_decay_params": "all" if weight_decay_params == "none"
                                   else weight_decay_params})


class _Toy:
    """A cell with a matrix, a bias and LayerNorm parameters (names as mindformers' grouping looks at them)."""

    @staticmethod
    def make():
        from mindspore import nn

        class Toy(nn.Cell):
            def __init__(self):
                super().__init__()
                self.dense = nn.Dense(2, 2)
                self.norm = nn.LayerNorm((2,))

        return Toy()


def test_the_optimizer_applies_the_reference_lr_at_step_k(ms_cpu, lr_reference):
    """Constant unit gradient and the parameter reset to 0 before each step: AdamW's update is lr_k / (1 + eps)."""
    import mindspore as ms
    from mindspore import nn
    from pangu_codeclm.train.optim import build_optimizer

    class One(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ms.Parameter(ms.Tensor(np.zeros(1, np.float32)), name="w")

    net = One()
    optimizer, schedule = build_optimizer(net, _run_config("none"))
    ref = next(s for s in lr_reference["schedules"] if s["num_training_steps"] == 137)["lr"]
    grad = (ms.Tensor(np.ones(1, np.float32)),)
    applied = []
    for _ in range(137):
        net.w.set_data(ms.Tensor(np.zeros(1, np.float32)))
        optimizer(grad)
        applied.append(-float(net.w.asnumpy()[0]) * (1 + 1e-8))
    np.testing.assert_allclose(applied, ref[:137], rtol=2e-5, atol=1e-13)   # step 0 runs at 0, step 2 at the peak
    assert int(optimizer.global_step.asnumpy().reshape(-1)[0]) == 137
    assert float(schedule(ms.Tensor(137, ms.int32)).asnumpy().reshape(-1)[0]) == pytest.approx(ref[137], rel=1e-6)


def test_weight_decay_on_every_parameter_by_default(ms_cpu):
    from pangu_codeclm.train.optim import param_groups
    net = _Toy.make()
    names = sorted(p.name for p in net.trainable_params())
    groups = param_groups(net, 0.01)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.01
    assert sorted(p.name for p in groups[0]["params"]) == names        # biases and LayerNorm included
    split = param_groups(net, 0.01, "except_bias_and_norm")
    decayed = {p.name for g in split if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {n for n in names if n.endswith("dense.weight")}
    with pytest.raises(ValueError, match="pangu.weight_decay_params: expected one of"):
        param_groups(net, 0.01, "some")


def _deepspeed_scaler(flags, scale=2.0 ** 16, factor=2.0, window=1000, hysteresis=2, min_scale=1.0):
    """The scale after each step under DeepSpeed's DynamicLossScaler.update_scale (consecutive_hysteresis False)."""
    cur_iter, last_overflow, budget, out = 0, -1, hysteresis, []
    for overflow in flags:
        if overflow:
            if hysteresis == 1 or budget == 1:
                scale = max(scale / factor, min_scale)
            else:
                budget -= 1
            last_overflow = cur_iter
        elif (cur_iter - last_overflow) % window == 0:
            budget = hysteresis
            scale *= factor
        cur_iter += 1
        out.append(scale)
    return out


def test_loss_scale_hysteresis_follows_deepspeed(ms_cpu):
    import mindspore as ms
    from pangu_codeclm.train.wrapper import HysteresisLossScaleUpdateCell
    rng = np.random.default_rng(0)
    flags = [True, False, True, True, False, False, True] + (rng.random(60) < 0.3).tolist() + [False] * 12
    cell = HysteresisLossScaleUpdateCell(loss_scale_value=2.0 ** 16, scale_window=5, hysteresis=2, min_loss_scale=1)
    scale = ms.Parameter(ms.Tensor(2.0 ** 16, ms.float32), name="scale")
    got = []
    for f in flags:
        assert bool(cell(scale, ms.Tensor(f)).asnumpy()) == f
        got.append(float(scale.asnumpy()))
    assert got == _deepspeed_scaler(flags, window=5)
    assert got[0] == 2.0 ** 16 and got[2] == 2.0 ** 15   # the first overflow only spends the hysteresis budget
    with pytest.raises(ValueError, match="need hysteresis >= 1"):
        HysteresisLossScaleUpdateCell(hysteresis=0)


def test_hysteresis_scaler_in_the_train_step_skips_the_optimizer_and_is_checkpointed(ms_cpu, tmp_path):
    """On overflow no optimizer step is taken (global_step, hence the LR, lags as DeepSpeed's skipped steps); the
    scaler's state is a set of wrapper parameters, so a checkpoint of the train-one-step cell carries it (resume)."""
    import mindspore as ms
    from mindspore import nn
    from pangu_codeclm.train.optim import build_optimizer
    from pangu_codeclm.train.wrapper import HysteresisLossScaleUpdateCell, PanguTrainOneStepCell

    class Linear(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="w")

        def construct(self, x):
            return (self.w * x).sum()

    net = Linear()
    optimizer, _ = build_optimizer(net, _run_config("none"))
    step = PanguTrainOneStepCell(net, optimizer, scale_sense=HysteresisLossScaleUpdateCell(
        loss_scale_value=8.0, scale_window=2, hysteresis=2))
    flags = [True, False, True, True, False]
    got = []
    for overflow in flags:
        out = step(ms.Tensor(np.array([np.inf if overflow else 1.0, 1.0], np.float32)))
        got.append((bool(out[1].asnumpy()), float(out[2].asnumpy()),
                    int(optimizer.global_step.asnumpy().reshape(-1)[0])))
    scales = _deepspeed_scaler(flags, scale=8.0, window=2)
    assert got == [(f, s, n) for f, s, n in zip(flags, scales, np.cumsum([not f for f in flags]).tolist())]
    path = tmp_path / "step.ckpt"
    ms.save_checkpoint(step, str(path))
    saved = {k: v.asnumpy().reshape(-1)[0].item() for k, v in ms.load_checkpoint(str(path)).items()
             if k.startswith(("loss_scale_", "scale_sense"))}
    assert saved == {"scale_sense": 2.0, "loss_scale_cur_iter": 5, "loss_scale_last_overflow_iter": 3,
                     "loss_scale_cur_hysteresis": 1}


def test_validation_split_is_datasets_train_test_split():
    from pangu_codeclm.train.dataset import split_rows
    train, val = split_rows(2500, 0.001, 42)
    perm = np.random.default_rng(42).permutation(2500).tolist()
    assert val == perm[:3] and train == perm[3:]                        # ceil(0.001 x 2500) = 3 held out
    assert split_rows(5, 0.0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError, match="leave no training rows"):
        split_rows(1, 0.5)


def _corrupt_dataset(tmp_path):
    from pangu_codeclm.data.mindrecord import write_dataset
    from pangu_codeclm.train.synthetic import synthetic_rows
    rows = list(synthetic_rows(9, 32, 64, segments=2, doc_len=10, seed=4))
    write_dataset(rows, tmp_path / "d", 32)
    return tmp_path / "d"


def _batches(data, **kw):
    from pangu_codeclm.train.dataset import build_dataset
    ds = build_dataset(str(data), 2, 6, corruption={"mask_id": 63, "random_high": 64}, seed=7,
                       validation_fraction=0.001, **kw)
    return [b[0] for b in ds.create_tuple_iterator(output_numpy=True, num_epochs=1)]


def test_corruption_is_dynamic_seeded_and_resumable(tmp_path):
    from pangu_codeclm.data.objectives import corruptible_positions
    from pangu_codeclm.train.dataset import build_dataset
    data = _corrupt_dataset(tmp_path)
    full = _batches(data)
    again = _batches(data)
    resumed = _batches(data, start_step=3)
    assert len(full) == 6 and len(resumed) == 3
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)                           # seeded: the same run draws the same
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a, b)                           # resumed at step 3: the same batches
    clean = [b[0] for b in build_dataset(str(data), 2, 6, seed=7).create_tuple_iterator(output_numpy=True,
                                                                                       num_epochs=1)]
    docstr = [b[4] for b in build_dataset(str(data), 2, 6, seed=7).create_tuple_iterator(output_numpy=True,
                                                                                        num_epochs=1)]
    changed = 0
    for x, c, d in zip(full, clean, docstr):
        for xr, cr, dr in zip(x, c, d):
            diff = xr != cr
            assert not (diff & ~corruptible_positions(dr)).any()      # only docstring tokens change
            changed += int(diff.sum())
    assert changed > 0
    # 8 training rows, 12 rows read: rows of the first epoch come back in the second with a fresh corruption
    first = {tuple(c.tolist()): x for xb, cb in zip(full[:4], clean[:4]) for x, c in zip(xb, cb)}
    again_rows = [(tuple(c.tolist()), x) for xb, cb in zip(full[4:], clean[4:]) for x, c in zip(xb, cb)]
    assert any(not np.array_equal(first[c], x) for c, x in again_rows if c in first)


def test_validation_rows_are_corrupted_once_as_the_reference_eval_batches(tmp_path):
    from pangu_codeclm.data.objectives import corruptible_positions
    from pangu_codeclm.train.dataset import validation_batches
    data = _corrupt_dataset(tmp_path)
    clean = validation_batches(str(data), 2, 0.2)                     # ceil(0.2 x 9) = 2 rows: one batch
    corruption = {"mask_id": 63, "random_high": 64, "seed": 7}
    corrupted = validation_batches(str(data), 2, 0.2, corruption=corruption)
    assert len(clean) == len(corrupted) == 1
    ids, docstr = corrupted[0][0], corrupted[0][4]
    diff = ids != clean[0][0]
    assert diff.any() and not (diff & ~np.stack([corruptible_positions(d) for d in docstr])).any()
    for a, b in zip(corrupted[0][1:], clean[0][1:]):
        np.testing.assert_array_equal(a, b)                           # labels, positions, masks untouched
    np.testing.assert_array_equal(validation_batches(str(data), 2, 0.2, corruption=corruption)[0][0], ids)


def test_new_token_twins_start_equal_and_pad_is_zeroed():
    from pangu_codeclm.train.pretrained import expand_embedding
    wte = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    init = np.arange(21, dtype=np.float32).reshape(7, 3) * -1.0
    # base token 1 gets twin 4; token 5 is new to the vocabulary (text row 5, [_DUP_] row 6)
    out = expand_embedding(wte, 7, {1: 4, 5: 6}, pad_id=2, init=init)
    np.testing.assert_array_equal(out[4], wte[1])
    np.testing.assert_array_equal(out[5], init[5])
    np.testing.assert_array_equal(out[6], out[5])                     # the reference: twin = the new row
    np.testing.assert_array_equal(out[2], 0)
    same = expand_embedding(wte, 4, None, pad_id=0)                   # no growth: <pad> zeroed all the same
    np.testing.assert_array_equal(same[0], 0)
    np.testing.assert_array_equal(same[1:], wte[1:])
    with pytest.raises(ValueError, match="outside the 7-row embedding"):
        expand_embedding(wte, 7, {1: 9}, pad_id=2, init=init)


def test_default_partial_separation_is_the_released_list(pangu_vocab_model, python_tokens_file):
    from pangu_codeclm.tokenization.pangu import PanguTokenizer
    from pangu_codeclm.tokenization.sentencepiece_base import default_partial_tokens, read_token_file
    assert default_partial_tokens() == read_token_file(python_tokens_file)
    tok = PanguTokenizer.from_vocab(pangu_vocab_model, separation="partial")
    assert tok.vocab_size == 32477 and len(tok.separation_map) == 348
    shared = PanguTokenizer.from_vocab(pangu_vocab_model, "partial", python_tokens_file)
    assert tok.separation_map == shared.separation_map
