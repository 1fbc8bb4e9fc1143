"""The files of an evaluation run (named once here) and their JSONL reading and writing.

Output directory: `samples.jsonl` (task_id, prompt, completion; plus sample_index and the raw `generated_ids`, see
`programs`), `results.jsonl` (status per sample), `summary.json`, `pass_at_k.png`, `canonical.json` (the gate's
report) and `run.json` (the generation settings a resume must share). Every file but the append-only samples.jsonl is
written atomically; samples.jsonl is appended one fsynced batch at a time and a torn last line is dropped on resume.
"""
import json
import logging

from .. import io_utils
from .settings import EvaluationError

logger = logging.getLogger(__name__)

SAMPLES, RESULTS, SUMMARY, PLOT, CANONICAL, RUN = ("samples.jsonl", "results.jsonl", "summary.json", "pass_at_k.png",
                                                   "canonical.json", "run.json")
COMPLETION_KEYS = ("completion", "generation", "generated_ids")  # a samples line carries at least one


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
    records = []
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


def jsonl(records):
    """JSON lines of `records` (non-ASCII kept)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_jsonl_atomic(path, records):
    io_utils.atomic_write_text(path, jsonl(records))
