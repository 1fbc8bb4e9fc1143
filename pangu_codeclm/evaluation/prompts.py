"""Prompts of the paper's protocol (../shared/DESIGN.md, "Evaluation"); completions and programs: `programs`.

Prompt: `<comments>` + NL text + `<python>` + code-side ids of the signature (plus, for incremental sub-task i, the
first i lines of the reference body in marker format). `paper` takes the signature the reference takes (HumanEval's
last def without the prompt's helpers; MBPP's first `def`); `corrected` the function the tests call.
"""
from ..codefmt import DEDENT, INDENT, NEW_LINE, source_to_markers
from .. import sample_format
from .. import benchmarks
from . import metrics, problems
from .incremental import reference_completions, reference_solution

MODES = problems.MODES


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


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
    """(source, node) of the function the model completes (the problem's benchmark decides)."""
    return benchmarks.of(problem).target_function(problem, mode)


def signature(problem, mode="paper"):
    """The signature line given to the model: the reference's text rule in paper mode (P1, P2), else the header of
    the function to complete, on one line, return annotation removed."""
    _check_mode(mode)
    if mode == "paper":
        return problems.reference_signature(problem)
    return header_of(*_target_node(problem, mode))


def nl_text(problem, mode="paper"):
    """The NL part of the prompt, each line stripped of spaces: in paper mode HumanEval's raw text between the last
    triple quotes (P1), otherwise the problem's `text` (HumanEval: the last docstring; MBPP: its description)."""
    _check_mode(mode)
    return benchmarks.of(problem).nl_text(problem, mode)


def reference_body(problem, mode="paper"):
    """The reference solution as a completion of `signature(problem, mode)` (what --check-canonical runs)."""
    _check_mode(mode)
    return benchmarks.of(problem).reference_body(problem, mode, _target_node(problem, mode))


# ----------------------------------------------------------------------------- generation tasks

def _body_lines(problem, mode):
    """Marker lines of the reference body (each with its leading INDENT/DEDENT markers), content lines only."""
    markers = source_to_markers(signature(problem, mode) + "\n" + reference_body(problem, mode))
    segments = [s.strip() for s in markers.split(NEW_LINE)]
    return [s for s in segments[1:] if s.replace(INDENT, "").replace(DEDENT, "").strip()]


def _given_completions(problem, mode, sig):
    """Marker text given after the signature in incremental sub-tasks 0, 1, ...

    Paper: the reference's sub-tasks (P3, `incremental.reference_completions`). Corrected: one sub-task per logical
    line of the reference body, spaced markers, one `<DEDENT>` per closed level, blank and comment lines skipped.
    """
    if mode == "paper":
        return reference_completions(reference_solution(problem), sig)
    lines = _body_lines(problem, mode)
    return [""] + [" " + " ".join([f"{NEW_LINE} {line}" for line in lines[:i]] + [NEW_LINE])
                   for i in range(1, len(lines))]


def build_tasks(problems, mode="paper", incremental=False, tokenizer=None):
    """Generation tasks, one per problem (or per incremental sub-task), in problem order.

    Keys: `task_id` (ours; sub-task i of P is `P_i`), `ref_task_id` (the reference's: `Python/N[_i]`, MBPP `N` /
    `"N_i"`), `problem_id`, `mode`, `text` (NL), `signature`, `completion` (marker text given after the signature:
    "" unless incremental), `code_prefix` (= signature + completion, the code the model continues), `given_lines`.
    With a `tokenizer`, also `prompt_ids` and `prefix_index` (`encode_prompt`).
    """
    _check_mode(mode)
    tasks = []
    for problem in problems:
        sig = signature(problem, mode)
        base = dict(problem_id=problem["task_id"], mode=mode, text=nl_text(problem, mode), signature=sig)
        completions = _given_completions(problem, mode, sig) if incremental else [""]
        for i, completion in enumerate(completions):
            ids = (metrics.subtask_id(problem["task_id"], i), metrics.subtask_id(problem["ref_task_id"], i)) \
                if incremental else (problem["task_id"], problem["ref_task_id"])
            tasks.append(dict(base, task_id=ids[0], ref_task_id=ids[1], completion=completion,
                              code_prefix=sig + completion, given_lines=i))
    if tokenizer is not None:
        for task in tasks:
            task["prompt_ids"], task["prefix_index"] = encode_prompt(tokenizer, task)
    return tasks


def encode_prompt(tokenizer, task):
    """(prompt ids, prefix index) of a task, as the reference's `PanguDataset`:

    `[<comments>] + enc(text) + [<python>] + code-side(enc(signature) + enc(completion))`, the signature and the
    completion encoded apart; the prefix index is that of `<python>` (= len(<comments> + text ids)). A task without
    `signature` (e.g. from `pangu-codeclm generate`) encodes its `code_prefix`. Paper-mode tasks are encoded with
    the generation-time tokenizer (`<s>`, `</s>`, `<unk>` in the text are single tokens, quirk T1).
    """
    if task.get("mode") == "paper":
        tokenizer = tokenizer.generation_time()
    code = [task["signature"], task["completion"]] if "signature" in task else [task["code_prefix"]]
    return sample_format.encode(tokenizer, task["text"], code)


def prompt_ids(tokenizer, task):
    """The prompt ids of `encode_prompt`."""
    return encode_prompt(tokenizer, task)[0]


def prompt_records(tasks, tokenizer):
    """One `--dump-prompts` line per task: task_id, ref_task_id, prompt_ids, completion, prefix_index."""
    records = []
    for task in tasks:
        ids, prefix_index = encode_prompt(tokenizer, task)
        records.append({"task_id": task["task_id"], "ref_task_id": task["ref_task_id"], "prompt_ids": ids,
                        "completion": task["completion"], "prefix_index": prefix_index})
    return records
