"""Unbiased pass@k (Chen et al. 2021) in the numerically stable product form, plus incremental macro/micro pools."""
import collections

import numpy as np

SUBTASK_SEP = "_"


def pass_at_k(n, c, k):
    """1 - C(n-c, k) / C(n, k) for one task with n samples of which c passed; needs 1 <= k <= n."""
    n, c, k = int(n), int(c), int(k)
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n, got n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def mean_pass_at_k(counts, ks):
    """{"pass@k": mean over tasks} for each k with k <= n on every task; `counts` maps task -> (n, c)."""
    if not counts:
        return {}
    min_n = min(int(n) for n, _ in counts.values())
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts.values()]))
            for k in sorted(set(int(k) for k in ks)) if k <= min_n}


def count_results(results):
    """Per-task (n, c) from an iterable of {"task_id", "passed"} records, tasks in first-seen order."""
    counts = collections.OrderedDict()
    for record in results:
        n, c = counts.get(record["task_id"], (0, 0))
        counts[record["task_id"]] = (n + 1, c + int(bool(record["passed"])))
    return counts


def subtask_id(task_id, index):
    """Id of incremental sub-task `index` (index reference lines given) of `task_id`."""
    return f"{task_id}{SUBTASK_SEP}{int(index)}"


def parse_subtask_id(sub_id):
    """(task_id, index) of an incremental sub-task id."""
    task_id, sep, index = str(sub_id).rpartition(SUBTASK_SEP)
    if not sep or not index.isdigit():
        raise ValueError(f"not an incremental sub-task id: {sub_id!r} (expected TASK{SUBTASK_SEP}INDEX)")
    return task_id, int(index)


def micro_counts(sub_counts):
    """Pool the sub-tasks' (n, c) per parent problem (micro incremental pass@k)."""
    pooled = collections.OrderedDict()
    for sub_id, (n, c) in sub_counts.items():
        task_id, _ = parse_subtask_id(sub_id)
        pn, pc = pooled.get(task_id, (0, 0))
        pooled[task_id] = (pn + n, pc + c)
    return pooled


def by_given_lines(sub_counts, ks):
    """{i: {"tasks": count, "pass@k": ...}} over the sub-tasks that gave the model i reference lines."""
    groups = collections.defaultdict(collections.OrderedDict)
    for sub_id, nc in sub_counts.items():
        groups[parse_subtask_id(sub_id)[1]][sub_id] = nc
    return {i: dict(tasks=len(g), **mean_pass_at_k(g, ks)) for i, g in sorted(groups.items())}


def summarize(counts, ks, incremental=False):
    """The metrics block of summary.json: pass@k (macro and micro for incremental runs) and what was skipped."""
    min_n = min((n for n, _ in counts.values()), default=0)
    skipped = sorted(int(k) for k in set(ks) if int(k) > min_n)
    out = {"tasks": len(counts), "samples": int(sum(n for n, _ in counts.values())),
           "passed": int(sum(c for _, c in counts.values())), "min_samples_per_task": int(min_n),
           "skipped_k": skipped}
    if incremental:
        out["macro"] = mean_pass_at_k(counts, ks)
        pooled = micro_counts(counts)
        out["micro"] = mean_pass_at_k(pooled, ks)
        out["problems"] = len(pooled)
        out["by_given_lines"] = {str(i): v for i, v in by_given_lines(counts, ks).items()}
    else:
        out.update(mean_pass_at_k(counts, ks))
    return out
