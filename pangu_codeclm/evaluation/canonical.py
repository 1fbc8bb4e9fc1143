"""The canonical gate: every reference solution runs in the sandbox before a score is trusted.

A run scores only if the canonical solutions fail exactly where their benchmark says they do (its
`expected_failures` for the assembly: facts of the protocol, not of the environment); anything else means a broken
setup. A timeout of a slow reference on a loaded machine is tolerated once per hundred problems.
"""
import logging

from .. import benchmarks
from . import programs

logger = logging.getLogger(__name__)


def check_canonical(problems, mode, executor):
    """Run the reference solutions under assembly `mode`; return {mode, passed, total, failed, unexpected, ok}."""
    results = executor.run([programs.assemble_program(p, programs.canonical_completion(p, mode), mode)
                            for p in problems])
    failed = {p["task_id"]: r["status"] for p, r in zip(problems, results) if not r["passed"]}
    dataset = problems[0]["dataset"] if problems else None
    expected = benchmarks.get(dataset).expected_failures[mode] if problems else frozenset()
    unexpected = sorted(t for t in failed if t not in expected)
    timeouts = [t for t in unexpected if failed[t] == "timed_out"]
    hard = [t for t in unexpected if failed[t] != "timed_out"]
    ok = not hard and len(timeouts) <= max(1, len(problems) // 100)
    report = {"mode": mode, "passed": len(problems) - len(failed), "total": len(problems),
              "failed": dict(sorted(failed.items())), "unexpected": unexpected, "ok": ok}
    logger.info("canonical check (%s, %s): %d/%d passed%s", dataset, mode, report["passed"], report["total"],
                "" if ok else f"; unexpected failures: {', '.join(unexpected)}")
    return report


def canonical_report(dataset, executor, mbpp_path=None, split=None, limit=0):
    """--check-canonical: the reference pass counts of one dataset in each of its benchmark's modes."""
    benchmark = benchmarks.get(dataset)
    report = {}
    for mode in benchmark.modes:
        problems = benchmark.load(mode, mbpp_path, split)
        report[mode] = check_canonical(problems[:limit] if limit else problems, mode, executor)
    return report
