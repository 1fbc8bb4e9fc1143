"""Batched generation of an evaluation run's samples, resumable: samples.jsonl is appended one fsynced batch at a time.

Batches, budgets and prefix indices follow the mode (`batching`); corrected greedy decoding uses continuous batching
when the model offers it (`generate_many`).
"""
import logging
import os
import time

from ..infer.generate import prefix_lm_enabled
from . import batching, programs, prompts, records

logger = logging.getLogger(__name__)


def generate_samples(model, tasks, settings, samples_path, prefixes, progress=True):
    """Generate the samples missing from `samples_path` (appending, fsynced as rows finish).

    Batches, budgets and prefix indices follow `settings.mode` (evaluation/batching.py); a batch is always generated
    whole, so a resumed run sees the batches of an uninterrupted one. Corrected greedy decoding uses continuous
    batching when the model offers it (`generate_many`). Records keep the raw `generated_ids`."""
    from tqdm import tqdm

    tokenizer = model.tokenizer
    done = set()
    if os.path.exists(samples_path):
        existing = records.read_jsonl(samples_path)
        records.write_jsonl_atomic(samples_path, existing)  # drops a torn last line for good
        done = {(r["task_id"], int(r.get("sample_index", 0))) for r in existing}
    encoded = {t["task_id"]: prompts.encode_prompt(tokenizer, t) for t in tasks}  # (ids, prefix index)
    use_prefix = prefix_lm_enabled(settings.prefix_lm, getattr(model, "config", None))
    rows = batching.generation_rows(tasks, settings.n_samples, settings.mode,
                                    {task_id: len(ids) for task_id, (ids, _) in encoded.items()})
    batches = [rows[b:b + settings.batch_size] for b in range(0, len(rows), settings.batch_size)]
    batches = [batch for batch in batches if any((t["task_id"], i) not in done for t, i in batch)]
    missing = sum((t["task_id"], i) not in done for batch in batches for t, i in batch)
    if done:
        logger.info("resuming: %d samples already in %s, %d to generate", len(done), samples_path, missing)
    logger.info("generating %d samples (%s mode, prefix LM %s)", missing, settings.mode, "on" if use_prefix else "off")
    bar = tqdm(total=missing, desc="generating", unit="sample", disable=not progress)
    tokens, start = 0, time.monotonic()

    with open(samples_path, "a", encoding="utf-8") as out:
        def write(pairs):
            """Append the records of (row, generated ids) pairs, fsynced; rows already in the file are skipped."""
            nonlocal tokens
            lines = []
            for (task, index), gen in pairs:
                if (task["task_id"], index) in done:
                    continue
                tokens += len(gen)
                lines.append({"task_id": task["task_id"], "sample_index": index,
                              "prompt": prefixes[task["problem_id"]],
                              "completion": programs.completion_from_ids(tokenizer, task, gen, settings.mode),
                              "generated_ids": programs.sample_ids(tokenizer, task, gen),  # G6: given + new ids
                              "given_lines": task["given_lines"], "mode": settings.mode, "prefix_lm": use_prefix})
            out.write(records.jsonl(lines))
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(lines))
            bar.set_postfix(tok_s=f"{tokens / max(time.monotonic() - start, 1e-9):.1f}")

        if settings.mode == "corrected" and settings.greedy and hasattr(model, "generate_many"):
            _generate_continuously(model, [row for batch in batches for row in batch if
                                           (row[0]["task_id"], row[1]) not in done], encoded, settings, use_prefix,
                                   write)
        else:
            for batch in batches:
                write(zip(batch, _generate_batch(model, batch, encoded, settings, use_prefix)))
    bar.close()
    return missing


def _generate_batch(model, batch, encoded, settings, use_prefix):
    """Generated ids of one padded batch (the mode's budgets and prefix indices; evaluation/batching.py)."""
    import numpy as np
    tokenizer = model.tokenizer
    ids, prefix_indices = zip(*(encoded[task["task_id"]] for task, _ in batch))
    padded = batching.collate(ids, prefix_indices, tokenizer.pad_id, settings.mode, settings.max_length,
                              settings.max_new_tokens)
    steps = int(padded.budgets.max())
    if steps <= 0:
        logger.warning("prompt of %d tokens leaves no room within %d positions: empty completion for %s",
                       padded.padded_length, settings.max_length, ", ".join(t["task_id"] for t, _ in batch))
        return [[] for _ in batch]
    seed = (settings.seed * 1000003 + hash_key(batch[0][0]["task_id"], batch[0][1])) % (2 ** 31)
    prefix = dict(prefix_index=padded.prefix_index) if use_prefix else {}
    output = np.asarray(model.generate(
        padded.input_ids, attention_mask=padded.attention_mask, max_new_tokens=steps,
        do_sample=not settings.greedy, temperature=settings.temperature, top_p=settings.top_p,
        top_k=settings.top_k, eos_token_id=tokenizer.eot_id, pad_token_id=tokenizer.pad_id,
        seed=None if settings.greedy else seed, **prefix))
    return [batching.generated_ids(output[r, padded.padded_length:], int(padded.budgets[r]), tokenizer.eot_id)
            for r in range(len(batch))]


def _generate_continuously(model, rows, encoded, settings, use_prefix, write):
    """Corrected greedy decoding with continuous batching: `settings.batch_size` rows decode at a time, a finished
    row's slot goes to the next prompt, and each record is written as soon as its row is done. Rows are independent
    in this mode, so the ids equal those of `_generate_batch` (tested)."""
    ids, prefix_indices = zip(*(encoded[task["task_id"]] for task, _ in rows)) if rows else ((), ())
    prompts_, budgets, index = batching.continuous_rows(ids, prefix_indices, settings.max_length,
                                                        settings.max_new_tokens)
    live = [r for r, budget in enumerate(budgets) if budget > 0]
    if len(live) < len(rows):
        empty = [rows[r] for r in range(len(rows)) if budgets[r] <= 0]
        logger.warning("prompts leave no room within %d positions: empty completion for %s", settings.max_length,
                       ", ".join(t["task_id"] for t, _ in empty))
        write((row, []) for row in empty)
    if not live:
        return
    model.generate_many([prompts_[r] for r in live], max_new_tokens=[int(budgets[r]) for r in live],
                        batch_size=settings.batch_size, eos_token_id=model.tokenizer.eot_id,
                        prefix_index=[int(index[r]) for r in live] if use_prefix else None,
                        on_finish=lambda i, gen: write([(rows[live[i]], list(gen))]))


def hash_key(task_id, index):
    """A stable (process-independent) integer for a sample, used to seed its batch."""
    import zlib
    return zlib.crc32(f"{task_id}#{index}".encode("utf-8"))
