"""Training callbacks: metrics (log, CSV, PNG loss curve, tqdm ETA bar) and checkpoint save/restore."""
import csv
import io
import logging
import math
import os
import time

import numpy as np
from mindspore.train.callback import Callback

from ..io_utils import atomic_path, atomic_write_text
from . import checkpoint as ckpt_lib
from .wrapper import name_step_outputs

logger = logging.getLogger(__name__)
FIELDS = ("step", "loss", "code_loss", "lr", "grad_norm", "overflow", "loss_scale", "tokens_per_s", "elapsed_s",
          "val_code_loss")


def _scalar(value):
    if value is None:
        return float("nan")
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def read_metrics(path):
    """Rows of a metrics CSV as dicts of floats (step as int)."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


class TrainMonitor(Callback):
    """Per-step loss, code-token loss, lr, grad norm, overflow, loss scale and tokens/s.

    Logs every `log_steps`, writes `metrics.csv` (one row per step, kept across resumes up to the resume step) and
    refreshes `loss_curve.png` every `plot_steps` and at the end; shows a tqdm bar with the ETA. In data-parallel runs
    each rank logs its own shard's loss: rank 0 writes `metrics.csv` and the PNG, rank r > 0 `metrics_rank<r>.csv`.
    With a `validator` (`ValidationLoss`), every `eval_steps` and at the last step the held-out code-token loss is
    added to the row (`val_code_loss`; NaN on other steps).
    """

    def __init__(self, output_dir, total_steps, tokens_per_step, start_step=0, log_steps=1, plot_steps=50,
                 code_loss_is_loss=True, rank_id=0, show_bar=True, validator=None, eval_steps=0):
        super().__init__()
        self.validator = validator
        self.eval_steps = int(eval_steps or 0)
        self.output_dir = os.fspath(output_dir)
        self.total_steps = int(total_steps)
        self.tokens_per_step = int(tokens_per_step)
        self.start_step = int(start_step)
        self.log_steps = max(1, int(log_steps))
        self.plot_steps = max(1, int(plot_steps))
        self.code_loss_is_loss = code_loss_is_loss
        self.plot_enabled = rank_id == 0
        self.show_bar = show_bar
        self.csv_path = os.path.join(self.output_dir, "metrics.csv" if rank_id == 0 else f"metrics_rank{rank_id}.csv")
        self.png_path = os.path.join(self.output_dir, "loss_curve.png")
        self.rows = []
        self._bar = None
        self._last = None
        self._t0 = None

    # ------------------------------------------------------------------ lifecycle
    def on_train_begin(self, run_context):
        os.makedirs(self.output_dir, exist_ok=True)
        kept = []
        if self.start_step > 0 and os.path.exists(self.csv_path):
            kept = [r for r in read_metrics(self.csv_path) if r["step"] <= self.start_step]
        self.rows = kept
        self._rewrite_csv()
        if self.show_bar:
            from tqdm import tqdm
            self._bar = tqdm(total=self.total_steps, initial=self.start_step, desc="train", unit="step",
                             dynamic_ncols=True)
        self._t0 = self._last = time.perf_counter()

    def on_train_step_end(self, run_context):
        params = run_context.original_args()
        out = name_step_outputs(params.net_outputs)
        now = time.perf_counter()
        step = self.start_step + int(params.cur_step_num)
        loss = _scalar(out["loss"])
        row = {
            "step": step,
            "loss": loss,
            "code_loss": loss if self.code_loss_is_loss else _scalar(out.get("code_loss", math.nan)),
            "overflow": float(bool(_scalar(out.get("overflow", 0.0)))),
            "loss_scale": _scalar(out.get("loss_scale", 1.0)),
            "lr": _scalar(out.get("learning_rate", math.nan)),
            "grad_norm": _scalar(out.get("global_norm", math.nan)),
            "tokens_per_s": self.tokens_per_step / max(now - self._last, 1e-9),
            "elapsed_s": now - self._t0,
        }
        if self.validator is not None and self.eval_steps > 0 and (step % self.eval_steps == 0
                                                                   or step == self.total_steps):
            row["val_code_loss"] = self.validator(params.train_network.network)
            logger.info("step %d/%d validation code-token loss %.6f (%d tokens)", step, self.total_steps,
                        row["val_code_loss"], self.validator.tokens)
            now = time.perf_counter()  # the validation pass does not count against tokens/s of the next step
        self._last = now
        self.rows.append(row)
        self._append_csv(row)
        if step % self.plot_steps == 0:
            self.plot()
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
            self._bar.update(1)
        if step % self.log_steps == 0 or step == self.total_steps:
            logger.info("step %d/%d loss %.6f code_loss %.6f lr %.3e grad_norm %.4f overflow %d loss_scale %g "
                        "tokens/s %.0f", step, self.total_steps, loss, row["code_loss"], row["lr"], row["grad_norm"],
                        int(row["overflow"]), row["loss_scale"], row["tokens_per_s"])
        if not math.isfinite(loss) and not row["overflow"]:
            logger.warning("step %d: loss is %s", step, loss)

    def on_train_end(self, run_context):
        if self._bar is not None:
            self._bar.close()
        self.plot()

    # ------------------------------------------------------------------ files
    def _rewrite_csv(self):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(row.get(k, math.nan)) for k in FIELDS})
        atomic_write_text(self.csv_path, buf.getvalue())

    def _append_csv(self, row):
        with open(self.csv_path, "a", encoding="utf-8", newline="") as f:
            f.write(",".join(_fmt(row.get(k, math.nan)) for k in FIELDS) + "\n")

    def plot(self):
        """Redraw the loss curve PNG (atomically) from the rows so far."""
        if not self.rows or not self.plot_enabled:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        steps = [r["step"] for r in self.rows]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, [r["loss"] for r in self.rows], label="loss")
        if not self.code_loss_is_loss:
            ax.plot(steps, [r["code_loss"] for r in self.rows], label="code-token loss")
        val = [(r["step"], r["val_code_loss"]) for r in self.rows if math.isfinite(r.get("val_code_loss", math.nan))]
        if val:
            ax.plot(*zip(*val), "o-", label="validation code-token loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_path(self.png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)


class ValidationLoss:
    """Loss over the code tokens of held-out batches (docstring targets masked, as the wrapper's code-token loss),
    token-weighted over all of them: `validator(network)` runs `network` in eval mode and returns the mean."""

    def __init__(self, batches):
        from ..sample_format import IGNORE_INDEX
        self.batches = []
        self.tokens = 0
        for ids, labels, pos, mask, docstr in batches:
            code_labels = np.where(docstr > 0, IGNORE_INDEX, labels).astype(np.int32)
            count = int((code_labels[:, 1:] != IGNORE_INDEX).sum())  # the model predicts labels[:, 1:]
            if count:
                self.batches.append(((ids, code_labels, pos, mask, docstr), count))
                self.tokens += count

    def __call__(self, network):
        import mindspore as ms
        if not self.tokens:
            return math.nan
        # Run eagerly: compiling a second graph over the training network's cells from inside a training callback
        # intermittently failed to parse in graph mode (a block call resolved to a class __init__, ~1 in 10 runs).
        mode = ms.get_context("mode")
        network.set_train(False)
        ms.set_context(mode=ms.PYNATIVE_MODE)
        try:
            total = sum(_scalar(network(*(ms.Tensor(c) for c in cols))) * count for cols, count in self.batches)
        finally:
            ms.set_context(mode=mode)
            network.set_train(True)
        return total / self.tokens


def _fmt(value):
    return str(int(value)) if isinstance(value, int) else repr(float(value))


class CheckpointCallback(Callback):
    """Restore a resume checkpoint at train begin; save every `save_steps` (and at the last step), keeping `keep`.

    The data position stored is the number of global rows consumed (step × global batch).
    """

    def __init__(self, directory, total_steps, save_steps, keep=3, start_step=0, resume_info=None,
                 global_batch_size=1):
        super().__init__()
        self.directory = directory
        self.total_steps = int(total_steps)
        self.save_steps = int(save_steps)
        self.keep = int(keep)
        self.start_step = int(start_step)
        self.resume_info = resume_info
        self.global_batch_size = int(global_batch_size)

    def on_train_begin(self, run_context):
        if self.resume_info is None:
            return
        params = run_context.original_args()
        ckpt_lib.load_into(params.train_network, self.resume_info)
        ckpt_lib.restore_rng_state(self.resume_info["rng"])
        logger.info("restored weights, optimizer state and RNG from %s (step %d, data position %d)",
                    self.resume_info["ckpt_path"], self.resume_info["step"], self.resume_info["data_position"])

    def on_train_step_end(self, run_context):
        params = run_context.original_args()
        step = self.start_step + int(params.cur_step_num)
        if step % self.save_steps == 0 or step == self.total_steps:
            path = ckpt_lib.save_checkpoint(
                params.train_network, self.directory, step, keep=self.keep,
                extra={"data_position": step * self.global_batch_size, "total_steps": self.total_steps})
            logger.info("saved checkpoint %s", path)
