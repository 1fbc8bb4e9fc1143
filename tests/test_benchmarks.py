"""The benchmark registry: every benchmark loads, its canonical gate fails exactly where it says, and MBPP sanitized
(the third benchmark) goes through prompts, programs, decontamination and `pangu-codeclm evaluate` end to end."""
import ast
import json

import pytest

from conftest import SHARED_DATA, tiny_hf_checkpoint
from pangu_codeclm.data.decontaminate import Decontaminator, load_benchmarks, normalize_text
from pangu_codeclm import benchmarks
from pangu_codeclm.benchmarks import mbpp_sanitized
from pangu_codeclm.evaluation import canonical, programs, prompts
from pangu_codeclm.evaluation.execute import Executor
from pangu_codeclm.evaluation.settings import EvaluationError, Settings


@pytest.fixture(scope="module")
def sanitized(sanitized_path):
    return mbpp_sanitized.load_mbpp_sanitized(sanitized_path)


@pytest.fixture(scope="module")
def executor():
    with Executor(workers=2, timeout=5.0) as ex:
        yield ex


def _path_for(name, mbpp_path, sanitized_path):
    return {"mbpp": mbpp_path, "mbpp_sanitized": sanitized_path}.get(name)


EXPECTED_SIZES = {("humaneval", "paper"): 164, ("humaneval", "corrected"): 164, ("mbpp", "paper"): 500,
                  ("mbpp", "corrected"): 500, ("mbpp_sanitized", "corrected"): 427}


def test_registry_lists_every_benchmark_and_refuses_unknown_ones():
    assert benchmarks.NAMES == ("humaneval", "mbpp", "mbpp_sanitized")
    assert {(b.name, m) for b in benchmarks.REGISTRY.values() for m in b.modes} == set(EXPECTED_SIZES)
    with pytest.raises(ValueError, match=r"unknown dataset 'apps'; expected one of humaneval, mbpp, mbpp_sanitized"):
        benchmarks.get("apps")
    with pytest.raises(EvaluationError, match="unknown dataset 'apps'"):
        Settings(dataset="apps").validate()


def test_cli_dataset_choices_come_from_the_registry(capsys):
    from pangu_codeclm.cli import main
    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "apps", "--check-canonical"])
    assert "mbpp_sanitized" in capsys.readouterr().err


@pytest.mark.parametrize("name, mode", sorted(EXPECTED_SIZES))
def test_each_benchmark_loads_with_its_prompt_parts(name, mode, mbpp_path, sanitized_path):
    problems = benchmarks.get(name).load(mode, _path_for(name, mbpp_path, sanitized_path))
    assert len(problems) == EXPECTED_SIZES[(name, mode)]
    assert len({p["task_id"] for p in problems}) == len(problems) and {p["dataset"] for p in problems} == {name}
    tasks = prompts.build_tasks(problems, mode)
    assert all(t["text"].strip() and t["signature"].startswith("def ") for t in tasks)
    for problem in problems[:20]:  # the reference body completes the signature into a function that parses
        ast.parse(prompts.signature(problem, mode) + "\n" + prompts.reference_body(problem, mode))


@pytest.mark.parametrize("name, mode", sorted(EXPECTED_SIZES))
def test_canonical_gate_fails_exactly_the_expected_tasks(name, mode, executor, mbpp_path, sanitized_path):
    benchmark = benchmarks.get(name)
    report = canonical.check_canonical(benchmark.load(mode, _path_for(name, mbpp_path, sanitized_path)), mode,
                                       executor)
    # a slow reference may time out on a loaded machine (the gate tolerates one per hundred): every other failure
    # is exactly an expected one
    timed_out = {t for t, status in report["failed"].items() if status == "timed_out"}
    assert report["ok"] and set(report["failed"]) - timed_out == benchmark.expected_failures[mode] - timed_out


def test_sanitized_problems_follow_the_mbpp_layout(sanitized, sanitized_path):
    assert [p["mbpp_id"] for p in sanitized] == sorted(p["mbpp_id"] for p in sanitized)
    assert (sanitized[0]["task_id"], sanitized[-1]["task_id"]) == ("MBPP/2", "MBPP/809")
    assert len(mbpp_sanitized.load_mbpp_sanitized(sanitized_path, split="test")) == 257
    first = sanitized[0]
    assert prompts.nl_text(first, "corrected") == "Write a function to find the shared elements from the given two lists."
    assert prompts.signature(first, "corrected") == "def similar_elements(test_tup1, test_tup2):"
    task82 = next(p for p in sanitized if p["task_id"] == "MBPP/82")  # its tests need `import math`
    program = programs.assemble_program(task82, programs.canonical_completion(task82, "corrected"), "corrected")
    assert task82["test_imports"] == ["import math"]
    assert program.index("import math\ndef volume_sphere(r):") < program.index("assert math.isclose(volume_sphere(10)")
    assert benchmarks.get("mbpp_sanitized").normalize_task_id("Mbpp/82") == "MBPP/82"  # evalplus' spelling


def test_sanitized_wrong_completion_fails_in_the_sandbox(sanitized, executor):
    task = sanitized[0]
    wrong, right = executor.run([programs.assemble_program(task, "    return ()\n", "corrected"),
                                 programs.assemble_program(task, programs.canonical_completion(task, "corrected"),
                                                           "corrected")])
    assert wrong["status"] == "failed" and "AssertionError" in wrong["detail"] and right["passed"]


def test_sanitized_has_no_paper_mode(sanitized_path, capsys):
    from pangu_codeclm.cli import main
    with pytest.raises(EvaluationError, match="mbpp_sanitized has no paper mode: the reference harness evaluates "
                                              "MBPP's full test split only"):
        Settings(dataset="mbpp_sanitized", mode="paper").validate()
    assert Settings(dataset="mbpp_sanitized").validate().mode == "corrected"  # its only mode is its default
    assert Settings(dataset="mbpp_sanitized").validate().split == "all"
    assert main(["evaluate", "--dataset", "mbpp_sanitized", "--mode", "paper", "--check-canonical",
                 "--mbpp-path", str(sanitized_path)]) == 1
    assert "has no paper mode" in capsys.readouterr().err


def test_bad_sanitized_file_names_the_record(tmp_path):
    bad = tmp_path / "sanitized-mbpp.json"
    bad.write_text('{"task_id": 2}')
    with pytest.raises(ValueError, match=r"sanitized-mbpp.json: expected a JSON list of task objects, found dict"):
        mbpp_sanitized.load_mbpp_sanitized(bad)
    bad.write_text('[{"task_id": 2, "prompt": "x", "code": "def f():\\n  pass", "test_list": []}]')
    with pytest.raises(ValueError, match=r"sanitized-mbpp.json: record 0: missing key\(s\) test_imports"):
        mbpp_sanitized.load_mbpp_sanitized(bad)
    with pytest.raises(FileNotFoundError, match="MBPP sanitized file not found: .*nowhere.json"):
        mbpp_sanitized.load_mbpp_sanitized(tmp_path / "nowhere.json")


def test_decontamination_uses_the_sanitized_set_beside_mbpp(mbpp_path, sanitized, monkeypatch, tmp_path):
    problems, used = load_benchmarks(mbpp_path)
    assert used["mbpp_sanitized"] == {"problems": 427, "path": str(SHARED_DATA / "mbpp" / "sanitized-mbpp.json")}
    assert len(problems) == 164 + 974 + 427
    # a pair whose docstring is a sanitized prompt that no MBPP text equals is caught by the sanitized set alone
    mbpp_texts = {normalize_text(p["text"]) for p in problems if p["dataset"] == "mbpp"}
    task = next(p for p in sanitized if normalize_text(p["prompt"]) not in mbpp_texts)
    hit = Decontaminator(problems).check(task["prompt"], "def unrelated(a):\n    return a\n")
    assert (hit.dataset, hit.task_id, hit.kind) == ("mbpp_sanitized", task["task_id"], "docstring")
    monkeypatch.setenv("PANGU_CODECLM_CACHE", str(tmp_path / "empty_cache"))
    _, missing = load_benchmarks(None)
    assert missing["mbpp_sanitized"]["problems"] == 0 and "sanitized-mbpp.json" in missing["mbpp_sanitized"]["note"]


def test_evaluate_cli_on_mbpp_sanitized_with_a_tiny_model(tmp_path, pangu_vocab_model, sanitized_path):
    """`pangu-codeclm evaluate --dataset mbpp_sanitized` end to end: the gate, a random tiny model, the sandbox."""
    from pangu_codeclm.cli import main
    tiny_hf_checkpoint(tmp_path / "ckpt", pangu_vocab_model)
    out = tmp_path / "run"
    assert main(["evaluate", "--model", str(tmp_path / "ckpt"), "--dataset", "mbpp_sanitized", "--mbpp-path",
                 str(sanitized_path), "--limit", "2", "--max-new-tokens", "6", "--workers", "2", "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "mbpp_sanitized" and summary["mode"] == "corrected"
    assert summary["per_task"] == {"MBPP/2": {"n": 1, "c": 0}, "MBPP/3": {"n": 1, "c": 0}}  # 6 random tokens
    assert summary["dataset_file"]["split"] == "all" and summary["dataset_file"]["file"] == str(sanitized_path)
    assert summary["canonical"]["ok"] and summary["canonical"]["passed"] == 2
    samples = {s["task_id"]: s for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert sorted(samples) == ["MBPP/2", "MBPP/3"] and samples["MBPP/2"]["mode"] == "corrected"
    assert samples["MBPP/2"]["prompt"] == "def similar_elements(test_tup1, test_tup2):\n"
