#!/usr/bin/env python3
"""Training throughput: the mindformers Trainer path (train.py) vs a bare training step, same network, same run.

Bare step: `mindspore.value_and_grad` over the same PanguCodeCLMForCausalLM + global-norm clip + mindformers AdamW with the
same LR schedule, jitted, fed from the same MindRecord dataset iterator. Trainer: `run_training` with the tiny CPU yaml
(our wrapper, callbacks writing metrics.csv/PNG, checkpoint callback with saving effectively off). The bare loop runs
before and after the Trainer (bracketing load drift). Reports median wall and process-CPU time per step after warm-up
(CPU time is the steadier figure on a shared machine), tokens/s, and the Trainer's overhead (target: <= 10%).

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


class StepTimer:
    """Callback recording (wall, process CPU) time at each step end."""

    def __init__(self):
        from mindspore.train.callback import Callback

        times = self.times = []

        class _CB(Callback):
            def on_train_step_end(self, run_context):
                times.append((time.perf_counter(), time.process_time()))

        self.callback = _CB()


def trainer_run(args, data_dir, out_dir):
    from pangu_codeclm.train.session import run_training
    timer = StepTimer()
    overrides = {
        "train_dataset.dataset_files": data_dir, "pangu.train_steps": args.steps, "pangu.save_steps": 10 ** 9,
        "pangu.show_bar": False, "pangu.log_steps": 10 ** 9, "pangu.plot_steps": 10,
        "model.model_config.vocab_size": args.vocab, "model.model_config.hidden_size": args.hidden,
        "model.model_config.num_layers": args.layers, "model.model_config.num_heads": args.heads,
        "model.model_config.ffn_hidden_size": 4 * args.hidden, "model.model_config.seq_length": args.seq,
        "model.model_config.max_position_embeddings": args.seq, "runner_config.batch_size": args.batch,
    }
    result = run_training(os.path.join(ROOT, "configs", "pangu_codeclm_tiny_cpu.yaml"), device_target="CPU",
                          output_dir=out_dir, overrides=overrides, callbacks=[timer.callback])
    return np.diff(np.array(timer.times), axis=0), result


def bare_run(args, data_dir, model_config):
    import mindspore as ms
    from mindspore import ops
    from mindformers.core.lr import CosineWithWarmUpLR
    from mindformers.core.optim import AdamW
    from pangu_codeclm.model.pangu import PanguCodeCLMForCausalLM
    from pangu_codeclm.train.dataset import build_dataset

    net = PanguCodeCLMForCausalLM(model_config)
    net.set_train(True)
    lr = CosineWithWarmUpLR(learning_rate=1e-3, lr_end=1e-4, warmup_ratio=0.01, total_steps=args.steps)
    opt = AdamW(net.trainable_params(), learning_rate=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    grad_fn = ms.value_and_grad(net, None, opt.parameters)

    @ms.jit
    def train_step(input_ids, labels, position_ids, attention_mask, docstr_mask):
        loss, grads = grad_fn(input_ids, labels, position_ids, attention_mask, docstr_mask)
        grads = ops.clip_by_global_norm(grads, 1.0)
        return ops.depend(loss, opt(grads))

    data = build_dataset(data_dir, args.batch, args.steps, seq_length=args.seq, seed=1234)
    times, losses = [], []
    for batch in data.create_tuple_iterator():
        losses.append(float(train_step(*batch).asnumpy()))
        times.append((time.perf_counter(), time.process_time()))
    return np.diff(np.array(times), axis=0), losses


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

    from pangu_codeclm.train.synthetic import write_synthetic_dataset
    work = tempfile.mkdtemp(prefix="train_throughput.")
    data_dir = os.path.join(work, "data")
    write_synthetic_dataset(data_dir, num_rows=4 * args.batch, seq_length=args.seq, vocab_size=args.vocab)

    trainer_dt, result = trainer_run(args, data_dir, os.path.join(work, "out"))   # also sets up the context
    model_config = result["network"].config
    bare_dt1, bare_losses = bare_run(args, data_dir, model_config)
    bare_dt2, _ = bare_run(args, data_dir, model_config)

    tokens = args.batch * args.seq
    w = args.warmup
    med = lambda dt, col: float(np.median(dt[w:, col]))  # noqa: E731
    trainer_losses = [r["loss"] for r in result["metrics"]]
    print(f"config: hidden {args.hidden}, {args.layers} blocks + top layer, seq {args.seq}, batch {args.batch}, "
          f"vocab {args.vocab}; {args.steps} steps, medians over steps {w + 2}..{args.steps}")
    print(f"{'path':<26}{'wall/step':>12}{'tokens/s':>10}{'CPU s/step':>12}")
    rows = [("bare step, run 1", bare_dt1), ("bare step, run 2", bare_dt2), ("mindformers Trainer", trainer_dt)]
    for name, dt in rows:
        print(f"{name:<26}{med(dt, 0) * 1e3:>9.1f} ms{tokens / med(dt, 0):>10.0f}{med(dt, 1):>12.3f}")
    bare_wall = (med(bare_dt1, 0) + med(bare_dt2, 0)) / 2
    bare_cpu = (med(bare_dt1, 1) + med(bare_dt2, 1)) / 2
    print(f"Trainer overhead vs mean bare: wall {100 * (med(trainer_dt, 0) / bare_wall - 1):+.1f}%, "
          f"CPU time {100 * (med(trainer_dt, 1) / bare_cpu - 1):+.1f}% (target <= 10%)")
    print(f"first/last loss: Trainer {trainer_losses[0]:.4f}/{trainer_losses[-1]:.4f}, "
          f"bare {bare_losses[0]:.4f}/{bare_losses[-1]:.4f}")
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
