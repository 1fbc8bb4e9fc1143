"""Per-sample arrays for the four pre-training objectives (see ../shared/DESIGN.md, "Sample layout and objectives"),
and the Corrupt Code CLM corruption of a packed row.

A sample is `[<comments>] + enc(docstring) + [<python>] + encode_code(code) + [<eot>]` (`sample_format`). For each
objective we build
`input_ids`, unshifted `labels` (-100 where a token is not a target; the model shifts over the whole packed row),
`docstr_mask` (1 for `<comments>` ... `<python>`) and `prefix_len` (length of the bidirectional block for Prefix Code
CLM, else 0). As in the reference (quirks D4-D6 of ../shared/data/reference/README.md):

- text_code:    every token is a target, `<comments>` included: in a packed row the previous sample's `<eot>`
                predicts it (the row's first token is never predicted, as it has no predecessor).
- code:         targets are the code tokens and `<eot>`.
- corrupt_code: as `code`; the docstring is corrupted when a batch is read (`corrupt_row`), not here.
- prefix_code:  as `code`, with a bidirectional block over `<comments>` ... `<python>` (`prefix_len` = its length).
"""
from dataclasses import dataclass

import numpy as np

from ..sample_format import IGNORE_INDEX, assemble

OBJECTIVES = ("text_code", "code", "corrupt_code", "prefix_code")
# the paper's names of the objectives (the grid's results table)
OBJECTIVE_TITLES = {"text_code": "Text-Code CLM", "code": "Code CLM", "corrupt_code": "Corrupt Code CLM",
                   "prefix_code": "Prefix Code CLM"}
CORRUPT_PROB = 0.15
MASK_FRACTION = 0.8


@dataclass(frozen=True)
class SpecialIds:
    """The ids an objective needs; build it with `SpecialIds.from_tokenizer(tok)`, never by hand in library code."""
    comments_id: int
    python_id: int
    eot_id: int
    mask_id: int
    pad_id: int
    random_high: int  # corrupted tokens are drawn uniformly from [0, random_high) = [0, len(tokenizer)) (D6)

    @classmethod
    def from_tokenizer(cls, tok):
        return cls(comments_id=tok.comments_id, python_id=tok.python_id, eot_id=tok.eot_id, mask_id=tok.mask_id,
                   pad_id=tok.pad_id, random_high=tok.vocab_size)


@dataclass
class Sample:
    """One tokenized pair with its objective arrays (int32, same length)."""
    input_ids: np.ndarray
    labels: np.ndarray
    docstr_mask: np.ndarray
    prefix_len: int

    def __len__(self):
        return len(self.input_ids)


def check_objective(name):
    """Return `name` if it is a known objective, else raise ValueError listing them."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
    return name


def corruptible_positions(docstr_mask):
    """bool [T]: the docstring tokens of a packed row (docstr_mask 1, without each sample's `<comments>` and
    `<python>`, which are the first and last position of its docstr block)."""
    d = np.asarray(docstr_mask) > 0
    before = np.concatenate([[False], d[:-1]])
    after = np.concatenate([d[1:], [False]])
    return d & before & after


def corrupt_tokens(ids, eligible, rng, mask_id, random_high, prob=CORRUPT_PROB, mask_fraction=MASK_FRACTION):
    """(corrupted int32 copy of `ids`, bool array of selected positions): each eligible position is selected with
    `prob`; of those, `mask_fraction` become `mask_id` and all others a uniform id in [0, random_high) (the
    reference's DataCollatorWithPaddingForCorruptCLM: no keep-original case)."""
    out = np.asarray(ids, dtype=np.int32).copy()
    n = len(out)
    chosen = (rng.random(n) < prob) & np.asarray(eligible, bool)
    to_mask = rng.random(n) < mask_fraction
    random_ids = rng.integers(0, random_high, size=n, dtype=np.int64).astype(np.int32)
    out[chosen & to_mask] = mask_id
    out[chosen & ~to_mask] = random_ids[chosen & ~to_mask]
    return out, chosen


def corrupt_row(input_ids, docstr_mask, seed, position, mask_id, random_high):
    """Corrupt Code CLM input of one packed row, drawn afresh each time the row is read: seeded by (seed, the row's
    position in the run's global row stream), so a run, its resume and any data-parallel split draw the same."""
    rng = np.random.default_rng([int(seed), int(position)])
    return corrupt_tokens(input_ids, corruptible_positions(docstr_mask), rng, mask_id, random_high)[0]


def build_sample(doc_ids, code_ids, objective, ids):
    """Objective arrays for one pair from docstring ids (`encode`) and code ids (`encode_code`)."""
    check_objective(objective)
    sample, python_index = assemble(doc_ids, code_ids, ids.comments_id, ids.python_id, ids.eot_id)
    input_ids = np.asarray(sample, dtype=np.int32)
    prefix = python_index + 1  # <comments> ... <python>
    labels = input_ids.copy()
    if objective != "text_code":
        labels[:prefix] = IGNORE_INDEX
    docstr_mask = np.zeros(len(input_ids), np.int32)
    docstr_mask[:prefix] = 1
    return Sample(input_ids, labels, docstr_mask, prefix if objective == "prefix_code" else 0)


def encode_pair(tokenizer, docstring, code, objective, ids=None):
    """Tokenize one record's docstring (text side) and code (code side, mapped) and build its sample."""
    ids = ids or SpecialIds.from_tokenizer(tokenizer)
    return build_sample(tokenizer.encode(docstring), tokenizer.encode_code(code), objective, ids)
