"""Problems by dataset name, through the benchmark registry (`pangu_codeclm.benchmarks`).

Every problem has `task_id` (str: "HumanEval/0", "MBPP/11"), `ref_task_id` (the reference's name: "Python/0", the
int 11), `dataset`, `text` (the natural-language description the model sees), `code` (the complete reference solution,
for decontamination and the canonical check), `entry_point` (the function the tests call) and the dataset's own fields;
each benchmark module documents its own.
"""
from .. import benchmarks

MODES = benchmarks.MODES
DATASETS = benchmarks.NAMES


def load_problems(dataset, mbpp_path=None, split=None, limit=None, mode="corrected"):
    """Problems of `dataset` (a registered benchmark) as `mode` reads them, the first `limit` if given; `split`
    None: the benchmark's default (MBPP: test, MBPP sanitized: all)."""
    problems = benchmarks.get(dataset).load(mode, mbpp_path, split)
    return problems[:limit] if limit else problems


def dataset_file(dataset, mbpp_path=None, mode="corrected"):
    """The file a dataset is read from in `mode` (for the sha256 in summary.json)."""
    return benchmarks.get(dataset).data_file(mode, mbpp_path)


def reference_signature(problem):
    """The signature the reference's text rule gives the model (paper mode)."""
    return benchmarks.of(problem).reference_signature(problem)


def problem_text(problem):
    """The natural-language description of a problem (decontamination, prompts)."""
    return problem["text"]


def reference_code(problem):
    """The complete reference solution of a problem (decontamination, canonical check)."""
    return problem["code"]


def normalize_task_id(task_id, dataset):
    """Our task id string for a sample's id in the dataset's spellings (11, "11", "MBPP/11", "Python/0", ...)."""
    return benchmarks.get(dataset).normalize_task_id(task_id)
