"""Incremental sub-tasks as the reference builds them (quirk P3 of ../shared/data/reference/README.md).

Sub-task i of a problem gives the model the signature plus the first i non-blank *physical* lines of the reference
solution, written with unspaced markers (`<NEW_LINE><INDENT>for x in y:<NEW_LINE>`):

- the completion starts with `<NEW_LINE>`; each non-blank line is appended stripped, followed by `<NEW_LINE>`;
- a deeper line gets one `<INDENT>`, a shallower one a single `<DEDENT>` however many levels it closes;
- blank lines seen since the last non-blank one are re-emitted as `<NEW_LINE>` (after the `<DEDENT>`, before the
  `<INDENT>`); comment and continuation lines count as lines;
- a prefix whose text (markers `<NEW_LINE>` removed) was seen before is skipped, sub-task 0 is the empty completion,
  and the last prefix (the whole solution) is dropped.

The solution is the text after the first occurrence of the signature (MBPP: code before the `def` is dropped and the
rest of the `def` line counts as a blank line, so every MBPP sub-task 1 starts with `<NEW_LINE><NEW_LINE>`), the whole
text when the signature does not occur in it (HumanEval: the canonical solution is the body alone).
"""
import string

from ..codefmt import DEDENT, INDENT, NEW_LINE


def _indent_width(line):
    """Characters before the first one that is not `string.whitespace` (tabs count as one)."""
    return len(line) - len(line.lstrip(string.whitespace))


def reference_completions(solution, signature):
    """The completions of sub-tasks 0, 1, ...: `""`, then each line prefix of `solution` but the last, in markers."""
    at = solution.find(signature)
    if at >= 0:
        solution = solution[at + len(signature):]
    prefixes, seen = [], set()
    text, depth, blank_lines = NEW_LINE, 0, 0
    for line in solution.split("\n"):
        content = line.strip()
        if not content:
            blank_lines += 1
            continue
        blanks, blank_lines = NEW_LINE * blank_lines, 0
        width = _indent_width(line)
        if width > depth:
            text += blanks + INDENT
        elif width < depth:
            text += DEDENT + blanks
        else:
            text += blanks
        depth = width
        text += content + NEW_LINE
        key = text.replace("\n", " ").replace(NEW_LINE, "").strip()
        if key not in seen:
            seen.add(key)
            prefixes.append(text)
    return [""] + prefixes[:-1]


def reference_solution(problem):
    """The text the reference cuts into sub-tasks (the problem's benchmark says which: HumanEval's canonical
    solution, MBPP's code)."""
    from .. import benchmarks
    return benchmarks.of(problem).incremental_solution(problem)
