"""Prompts and program assembly: signatures, NL text, truncation, incremental sub-tasks, canonical pass counts."""
import re

import pytest

from pangu_codeclm import codefmt
from pangu_codeclm.evaluation import canonical, problems, programs, prompts
from pangu_codeclm.benchmarks import humaneval as he_bench, mbpp as mbpp_bench
from pangu_codeclm.evaluation.execute import Executor

MARKERS = {"<NEW_LINE>": 4, "<INDENT>": 5, "<DEDENT>": 6}
CODE_OFFSET = 100000  # code-side ids: text id + offset, as a separated vocabulary would map them


class FakeTokenizer:
    """Character-level stand-in with the PanguTokenizer interface the evaluation uses."""
    pad_id, comments_id, python_id, eot_id = 0, 1, 2, 3
    newline_id, indent_id, dedent_id = 4, 5, 6
    _split = re.compile(r"\s*(<NEW_LINE>|<INDENT>|<DEDENT>)\s*")

    def encode(self, text):
        ids = []
        for i, part in enumerate(self._split.split(text)):
            if i % 2:
                ids.append(MARKERS[part])
            else:
                ids += [ord(c) + 10 for c in part]
        return ids

    def encode_code(self, code):
        return [i + CODE_OFFSET if i >= 10 else i for i in self.encode(code)]

    def generation_time(self):  # no <s>, </s>, <unk> here: the same tokenizer
        return self

    def id_to_token(self, i):
        """Token strings as the reference joins them: specials by name, "▁" for a space, `[_DUP_]` code side."""
        i = int(i)
        code_side = i >= CODE_OFFSET
        i = i - CODE_OFFSET if code_side else i
        names = {0: "<pad>", 1: "<comments>", 2: "<python>", 3: "<eot>", **{v: k for k, v in MARKERS.items()}}
        text = names[i] if i in names else ("" if i < 10 else chr(i - 10).replace(" ", "\u2581"))
        return "[_DUP_]" + text if code_side else text

    def decode(self, ids):
        names = {v: k for k, v in MARKERS.items()}
        out = []
        for i in ids:
            i = int(i)
            i = i - CODE_OFFSET if i >= CODE_OFFSET else i
            out.append(f" {names[i]} " if i in names else ("" if i < 10 else chr(i - 10)))
        return "".join(out)


@pytest.fixture(scope="module")
def humaneval():
    return he_bench.load_humaneval()


@pytest.fixture(scope="module")
def mbpp(mbpp_path):
    return mbpp_bench.load_mbpp(mbpp_path)


def test_loaders_give_the_expected_problem_sets(humaneval, mbpp, mbpp_path):
    assert len(humaneval) == 164 and humaneval[0]["task_id"] == "HumanEval/0"
    assert len(mbpp) == 500 and (mbpp[0]["mbpp_id"], mbpp[-1]["mbpp_id"]) == (11, 510)
    assert len(mbpp_bench.load_mbpp(mbpp_path, split="validation")) == 90
    assert problems.problem_text(mbpp[0]).startswith("Write a python function to remove first and last occurrence")
    assert "def remove_Occ" in problems.reference_code(mbpp[0])
    with pytest.raises(ValueError, match="unknown MBPP split"):
        mbpp_bench.load_mbpp(mbpp_path, split="dev")


def test_bad_mbpp_file_names_the_line(tmp_path):
    bad = tmp_path / "mbpp.jsonl"
    bad.write_text('{"task_id": 11, "text": "x"}\n')
    with pytest.raises(ValueError, match=r"mbpp.jsonl:1: missing key\(s\) code"):
        mbpp_bench.load_mbpp(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="mbpp.jsonl:1: not valid JSON"):
        mbpp_bench.load_mbpp(bad)


def test_missing_mbpp_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGU_CODECLM_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--mbpp-path"):
        mbpp_bench.resolve_mbpp_path(download=False)


def test_humaneval_signature_and_text(humaneval):
    first = humaneval[0]
    assert prompts.signature(first) == "def has_close_elements(numbers: List[float], threshold: float):"
    assert prompts.nl_text(first).startswith("Check if in given list of numbers")
    assert "    " not in prompts.nl_text(first)
    # HumanEval/115 has `import math` before its docstring; the text is still the docstring
    assert "rectangular grid of wells" in prompts.nl_text(humaneval[115])
    assert prompts.signature(humaneval[115]) == "def max_fill(grid, capacity):"


def test_mbpp_paper_uses_the_first_def_and_corrected_the_tested_one(mbpp):
    task18 = next(p for p in mbpp if p["task_id"] == "MBPP/18")
    assert prompts.signature(task18, "paper").startswith("def str_to_list(")
    assert prompts.signature(task18, "corrected").startswith("def remove_dirty_chars(")
    assert task18["entry_point"] == "remove_dirty_chars"
    paper = programs.assemble_program(task18, "    return 1\n", "paper")
    assert "def check(str_to_list):" in paper and paper.rstrip().endswith("check(str_to_list)")
    corrected = programs.assemble_program(task18, "    return 1\n", "corrected")
    assert "def get_char_count_array(" in corrected and "def check(" not in corrected
    with pytest.raises(ValueError, match="unknown mode"):
        prompts.signature(task18, "fixed")


def test_truncation_at_the_first_top_level_line():
    body = "    x = 1\n\n    return x\ndef helper():\n    pass\nprint('leak')\n"
    assert programs.truncate_body(body) == "    x = 1\n\n    return x"
    assert programs.truncate_body("\tif a:\n\t\treturn 1\n# trailing comment\n") == "\tif a:\n\t\treturn 1"


def test_prompt_ids_layout():
    tok = FakeTokenizer()
    task = {"text": "Add.", "code_prefix": "def add(a, b):"}
    ids = prompts.prompt_ids(tok, task)
    assert ids[0] == tok.comments_id and ids[1:5] == tok.encode("Add.") and ids[5] == tok.python_id
    assert ids[6:] == tok.encode_code("def add(a, b):") and min(ids[6:]) >= CODE_OFFSET


def test_completion_from_generated_markers_is_python_cut_at_top_level():
    task = {"code_prefix": "def add(a, b):"}
    text = "<NEW_LINE> <INDENT> c = a + b <NEW_LINE> return c <NEW_LINE> <DEDENT> print(add(1, 2)) <NEW_LINE>"
    assert programs.completion_from_markers(task, text) == "    c = a + b\n    return c"
    tok = FakeTokenizer()
    generated = tok.encode_code(text) + [tok.eot_id] + tok.encode_code("garbage <NEW_LINE> <INDENT> x")
    assert programs.completion_from_ids(tok, task, generated, "corrected") == "    c = a + b\n    return c"
    # paper (the default): the reference's text processing; the evaluator truncates the top-level print later
    assert programs.completion_from_ids(tok, task, generated) == "\n    c = a + b\n    return c\nprint(add(1, 2))\n"


def test_corrected_incremental_subtasks_give_growing_prefixes(humaneval):
    """Corrected mode keeps logical-line sub-tasks in codefmt markers (paper mode: tests/test_paper_prompts.py)."""
    problem = humaneval[0]
    tasks = prompts.build_tasks([problem], "corrected", incremental=True)
    body = prompts.reference_body(problem, "corrected")
    n_lines = sum(1 for line in body.split("\n") if line.strip())
    assert [t["given_lines"] for t in tasks] == list(range(n_lines))
    assert [t["task_id"] for t in tasks][:2] == ["HumanEval/0_0", "HumanEval/0_1"]
    assert tasks[0]["code_prefix"] == prompts.signature(problem, "corrected")
    assert "for idx, elem in enumerate(numbers):" in tasks[1]["code_prefix"]
    # prefix + the rest of the reference's marker lines rebuilds the reference body
    full = codefmt.source_to_markers(prompts.signature(problem, "corrected") + "\n" + body)
    for task in tasks:
        given = task["code_prefix"]
        rest = full[len(given):] if full.startswith(given) else None
        assert rest is not None, task["task_id"]
        rebuilt = programs.completion_from_markers(task, rest)
        assert rebuilt.split() == codefmt.markers_to_source(full).split("\n", 1)[1].split()


def test_canonical_counts_humaneval_and_mbpp_subset(humaneval, mbpp):
    subset = mbpp[:60]
    with Executor(workers=2, timeout=5.0) as executor:
        he = {mode: canonical.check_canonical(humaneval, mode, executor) for mode in prompts.MODES}
        mb = {mode: canonical.check_canonical(subset, mode, executor) for mode in prompts.MODES}
    assert (he["corrected"]["passed"], he["paper"]["passed"]) == (164, 160)
    assert set(he["paper"]["failed"]) == {"HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50"}
    assert mb["corrected"]["passed"] == 60 and mb["corrected"]["ok"]
    expected = {t for t in mbpp_bench.MBPP.expected_failures["paper"] if int(t.split("/")[1]) <= 70}
    assert set(mb["paper"]["failed"]) == expected and mb["paper"]["ok"]
