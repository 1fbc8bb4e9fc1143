"""Generation batches: row order, left padding, each row's token budget and its prefix-LM index, per mode.

`paper` is the reference's `generation.py` + `geneval.sh`: batches of `batch_size` (16) prompts in dataset order, one
round of the dataset per sample, left-padded with `<pad>` by `MyCollate`; `max_length=1024` bounds the padded batch,
so every row gets at most `max_length − batch_padded_length` new tokens (quirk G5); the prefix index stays where it is
in the unpadded prompt, i.e. it is not shifted by the padding (quirk G4). `corrected` sorts rows by prompt length (less
padding), gives each row `max_length − its own length` and shifts the prefix index onto its `<python>`; rows are
independent there, so greedy outputs do not depend on the batch.
"""
import dataclasses

import numpy as np

from .prompts import MODES


def generation_rows(tasks, n_samples, mode, lengths):
    """(task, sample_index) rows in generation order. paper: sample round by round over the tasks in dataset order
    (the reference's outer loop over samples, an unshuffled DataLoader); corrected: sorted by prompt length
    (`lengths`: task_id → prompt length; stable, so ties keep dataset order)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "paper":
        return [(task, index) for index in range(n_samples) for task in tasks]
    rows = [(task, index) for task in tasks for index in range(n_samples)]
    return sorted(rows, key=lambda row: lengths[row[0]["task_id"]])


@dataclasses.dataclass
class PaddedBatch:
    """A left-padded batch: ids and mask [B, W], `left_padding` [B], `prefix_index` [B] in batch coordinates (the
    reference's index form: keys <= it are visible to every query) and `budgets` [B] (new tokens each row may get)."""
    input_ids: np.ndarray
    attention_mask: np.ndarray
    left_padding: np.ndarray
    prefix_index: np.ndarray
    budgets: np.ndarray

    @property
    def padded_length(self):
        return self.input_ids.shape[1]


def collate(prompts, prefix_indices, pad_id, mode, max_length, max_new_tokens):
    """Left-pad `prompts` (id lists) with `pad_id`; budgets and prefix indices as `mode` computes them."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    lengths = np.array([len(p) for p in prompts], dtype=np.int64)
    width = int(lengths.max())
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = prompt
        mask[row, width - len(prompt):] = 1
    padding = width - lengths
    prefix = np.asarray(prefix_indices, dtype=np.int64)
    if mode == "paper":  # G4: MyCollate shifts prompt_length by the padding but not prefix_lm_mask; G5: padded length
        budgets = np.full(len(prompts), min(max_new_tokens, max_length - width))
    else:
        prefix = prefix + padding
        budgets = corrected_budgets(lengths, max_length, max_new_tokens)
    return PaddedBatch(ids, mask, padding, prefix, np.maximum(budgets, 0))


def corrected_budgets(lengths, max_length, max_new_tokens):
    """`corrected`: each row's own budget, max_length - its prompt length (at most max_new_tokens, at least 0)."""
    return np.maximum(np.minimum(max_new_tokens, max_length - np.asarray(lengths, dtype=np.int64)), 0)


def continuous_rows(prompts, prefix_indices, max_length, max_new_tokens):
    """`corrected` without batches, for continuous batching (`generate_many`): (prompts, budgets, prefix indices in
    each prompt's own coordinates). Rows are independent in this mode, so greedy ids equal those of `collate`'s
    batches; `paper` keeps its batches of 16 (its budget and prefix index depend on the batch: G4, G5)."""
    lengths = [len(p) for p in prompts]
    return list(prompts), corrected_budgets(lengths, max_length, max_new_tokens), np.asarray(prefix_indices,
                                                                                            dtype=np.int64)


def generated_ids(row, budget, eos_id):
    """The ids a row produced: at most `budget`, up to and including the first `eos_id` (later ids are padding)."""
    ids = [int(i) for i in row[:budget]]
    return ids[:ids.index(eos_id) + 1] if eos_id in ids else ids
