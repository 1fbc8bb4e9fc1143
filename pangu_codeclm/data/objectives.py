"""Per-sample arrays for the four pre-training objectives (see ../shared/DESIGN.md, "Sample layout and objectives").

A sample is `[<comments>] + enc(docstring) + [<python>] + encode_code(code) + [<eot>]`. For each objective we build
`input_ids`, unshifted `labels` (−100 where a token is not a target; the model shifts), `docstr_mask` (1 for
`<comments>` … `<python>`) and `prefix_len` (length of the bidirectional block for Prefix Code CLM, else 0).

- text_code:    every token is a target except the sample's first (`<comments>`, never predicted inside its sample).
- code:         targets are the code tokens and `<eot>`.
- corrupt_code: as `code`, and each docstring token (not `<comments>`/`<python>`) is corrupted with p=0.15:
                80% → `<mask>`, otherwise a uniformly random ordinary id in [0, first special id); seeded per sample.
- prefix_code:  as `code`, with a bidirectional block over `<comments>` … `<python>` (`prefix_len` = its length).
"""
from dataclasses import dataclass

import numpy as np

OBJECTIVES = ("text_code", "code", "corrupt_code", "prefix_code")
IGNORE_INDEX = -100
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
    random_high: int  # corrupted tokens are drawn uniformly from [0, random_high)

    @classmethod
    def from_tokenizer(cls, tok):
        return cls(comments_id=tok.comments_id, python_id=tok.python_id, eot_id=tok.eot_id, mask_id=tok.mask_id,
                   pad_id=tok.pad_id, random_high=min(tok.eod_id, tok.pad_id, tok.eot_id, tok.comments_id))


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


def corrupt_docstring(doc_ids, ids, rng, prob=CORRUPT_PROB, mask_fraction=MASK_FRACTION):
    """Return a corrupted copy of `doc_ids` (int32) and the boolean array of corrupted positions."""
    doc = np.asarray(doc_ids, dtype=np.int32).copy()
    chosen = rng.random(len(doc)) < prob
    to_mask = rng.random(len(doc)) < mask_fraction
    random_ids = rng.integers(0, ids.random_high, size=len(doc), dtype=np.int64).astype(np.int32)
    doc[chosen & to_mask] = ids.mask_id
    doc[chosen & ~to_mask] = random_ids[chosen & ~to_mask]
    return doc, chosen


def build_sample(doc_ids, code_ids, objective, ids, seed=0, index=0):
    """Objective arrays for one pair from docstring ids (`encode`) and code ids (`encode_code`).

    `seed` and `index` seed the corruption (so any worker builds the same sample for the same index).
    """
    check_objective(objective)
    doc = np.asarray(doc_ids, dtype=np.int32)
    if objective == "corrupt_code":
        doc, _ = corrupt_docstring(doc, ids, np.random.default_rng([seed, index]))
    code = np.asarray(code_ids, dtype=np.int32)
    prefix = len(doc) + 2
    input_ids = np.concatenate([np.array([ids.comments_id], np.int32), doc, np.array([ids.python_id], np.int32),
                                code, np.array([ids.eot_id], np.int32)])
    labels = input_ids.copy()
    if objective == "text_code":
        labels[0] = IGNORE_INDEX
    else:
        labels[:prefix] = IGNORE_INDEX
    docstr_mask = np.zeros(len(input_ids), np.int32)
    docstr_mask[:prefix] = 1
    return Sample(input_ids, labels, docstr_mask, prefix if objective == "prefix_code" else 0)


def encode_pair(tokenizer, docstring, code, objective, seed=0, index=0, ids=None):
    """Tokenize one record's docstring (text side) and code (code side, mapped) and build its sample."""
    ids = ids or SpecialIds.from_tokenizer(tokenizer)
    return build_sample(tokenizer.encode(docstring), tokenizer.encode_code(code), objective, ids, seed, index)
