#!/usr/bin/env python3
"""Training throughput: the mindformers Trainer path (train.py) vs a bare training step, same network, same run.

Bare step: `mindspore.value_and_grad` over a second PanguCodeCLMForCausalLM of the same config + global-norm clip +
mindformers AdamW with the same LR schedule, jitted, fed from the same MindRecord dataset. Trainer: `run_training` with
the tiny CPU yaml (our wrapper with overflow check, metrics CSV/PNG callbacks, checkpoint callback saving only the
last step).

The two are interleaved step by step: after each Trainer step a callback runs one bare step and times it, so both see
the same machine load (this matters on a shared CPU). Trainer step time = gap between consecutive Trainer step ends
minus the bare step run inside it. Reports medians after warm-up, tokens/s, and the median per-step ratio (the
Trainer's overhead; target <= 10%).

python benchmarks/train_throughput.py [--steps 40] [--hidden 128] [--layers 2] [--seq 128] [--batch 8] [--vocab 32013]
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_bare_step(model_config, steps):
    """A jitted functional training step (loss of the batch) on a fresh network."""
    import mindspore as ms
    from mindspore import ops
    from mindformers.core.lr import CosineWithWarmUpLR
    from mindformers.core.optim import AdamW
    from pangu_codeclm.model.pangu import PanguCodeCLMForCausalLM

    net = PanguCodeCLMForCausalLM(model_config)
    net.set_train(True)
    lr = CosineWithWarmUpLR(learning_rate=1e-3, lr_end=1e-4, warmup_ratio=0.01, total_steps=steps)
    opt = AdamW(net.trainable_params(), learning_rate=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    grad_fn = ms.value_and_grad(net, None, opt.parameters)

    @ms.jit
    def train_step(input_ids, labels, position_ids, attention_mask, docstr_mask):
        loss, grads = grad_fn(input_ids, labels, position_ids, attention_mask, docstr_mask)
        grads = ops.clip_by_global_norm(grads, 1.0)
        return ops.depend(loss, opt(grads))

    return train_step


def interleaved_callback(args, data_dir, model_config):
    """Callback that times Trainer steps and runs one timed bare step after each."""
    from mindspore.train.callback import Callback
    from pangu_codeclm.train.dataset import build_dataset

    class Interleave(Callback):
        def __init__(self):
            super().__init__()
            self.trainer_times, self.bare_times, self.bare_losses = [], [], []
            self._step = self._batches = None
            self._last_end = None

        def on_train_begin(self, run_context):
            self._step = make_bare_step(model_config, args.steps)
            data = build_dataset(data_dir, args.batch, args.steps, seq_length=args.seq, seed=1234)
            self._batches = data.create_tuple_iterator()

        def on_train_step_end(self, run_context):
            now = time.perf_counter()
            if self._last_end is not None:
                self.trainer_times.append(now - self._last_end)
            batch = next(self._batches)
            t0 = time.perf_counter()
            self.bare_losses.append(float(self._step(*batch).asnumpy()))
            t1 = time.perf_counter()
            self.bare_times.append(t1 - t0)
            self._last_end = t1

    return Interleave()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the medians")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32013)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("GLOG_v", "3")

    from pangu_codeclm.train.context import load_run_config, model_config_from
    from pangu_codeclm.train.session import run_training
    from pangu_codeclm.train.synthetic import write_synthetic_dataset
    with tempfile.TemporaryDirectory(prefix="train_throughput.") as work:  # data, checkpoints, metrics: removed after
        data_dir = os.path.join(work, "data")
        write_synthetic_dataset(data_dir, num_rows=4 * args.batch, seq_length=args.seq, vocab_size=args.vocab)
        overrides = {
            "train_dataset.dataset_files": data_dir, "pangu.train_steps": args.steps, "pangu.save_steps": 10 ** 9,
            "pangu.show_bar": False, "pangu.log_steps": 10 ** 9, "pangu.plot_steps": 10,
            "model.model_config.vocab_size": args.vocab, "model.model_config.hidden_size": args.hidden,
            "model.model_config.num_layers": args.layers, "model.model_config.num_heads": args.heads,
            "model.model_config.ffn_hidden_size": 4 * args.hidden, "model.model_config.seq_length": args.seq,
            "model.model_config.max_position_embeddings": args.seq, "runner_config.batch_size": args.batch,
        }
        yaml_path = os.path.join(ROOT, "configs", "pangu_codeclm_tiny_cpu.yaml")
        model_config = model_config_from(load_run_config(yaml_path, overrides=overrides))
        timer = interleaved_callback(args, data_dir, model_config)
        result = run_training(yaml_path, device_target="CPU",
                              output_dir=os.path.join(work, "out"), overrides=overrides, callbacks=[timer])

    w = args.warmup
    trainer = np.array(timer.trainer_times[w:])          # trainer step i+1 (gap after bare step i)
    bare = np.array(timer.bare_times[w + 1:])             # the bare step right after it
    n = min(len(trainer), len(bare))
    trainer, bare = trainer[:n], bare[:n]
    tokens = args.batch * args.seq
    t_med, b_med = float(np.median(trainer)), float(np.median(bare))
    trainer_losses = [r["loss"] for r in result["metrics"]]
    print(f"config: hidden {args.hidden}, {args.layers} blocks + top layer, seq {args.seq}, batch {args.batch}, "
          f"vocab {args.vocab}; {args.steps} steps interleaved, medians over {n} step pairs after {w} warm-up")
    print(f"{'path':<24}{'median step':>14}{'tokens/s':>11}")
    print(f"{'bare step (baseline)':<24}{b_med * 1e3:>11.1f} ms{tokens / b_med:>11.0f}")
    print(f"{'mindformers Trainer':<24}{t_med * 1e3:>11.1f} ms{tokens / t_med:>11.0f}")
    ratio = np.median(trainer / bare)
    q1, q3 = np.percentile(trainer / bare, [25, 75])
    print(f"Trainer overhead: {100 * (ratio - 1):+.1f}% (median of per-step ratios; IQR {100 * (q1 - 1):+.1f}% .. "
          f"{100 * (q3 - 1):+.1f}%; target <= 10%)")
    print(f"first/last loss: Trainer {trainer_losses[0]:.4f}/{trainer_losses[-1]:.4f}, "
          f"bare {timer.bare_losses[0]:.4f}/{timer.bare_losses[-1]:.4f}")


if __name__ == "__main__":
    main()
