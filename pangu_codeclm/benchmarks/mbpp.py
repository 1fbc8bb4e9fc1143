"""MBPP (google-research `mbpp.jsonl`, 974 tasks; the test split is task ids 11-510).

Problems keep the file's keys, with `task_id` `MBPP/N` (`mbpp_id` and `ref_task_id` the integer N), `entry_point` the
function the tests call first and `check_name` the name the reference's evaluator passes to `check(...)` (quirk E3).
Paper mode gives the first textual `def` (P2: it may be a helper or a method) and wraps the asserts in
`def check(NAME)`; corrected mode completes the tested function inside its file's context (imports, globals, helpers,
`test_setup_code`) and runs the asserts as they are.
"""
import ast
import logging
import warnings

from .base import (Benchmark, DataFile, def_header, drop_return_annotation, function_body, functions, parse_source,
                   read_jsonl, require)

logger = logging.getLogger(__name__)

MBPP_URL = "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl"
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974), "all": (1, 10 ** 9)}
MBPP_KEYS = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")
DATA = DataFile("mbpp", "mbpp.jsonl", MBPP_URL, "MBPP", "--mbpp-path", "google-research/mbpp")


def local_mbpp_path(path=None):
    """`path` if it is a file, else the checkout's ../shared copy if there is one, else None (no download)."""
    return DATA.local(path)


def resolve_mbpp_path(path=None, cache_dir=None, download=True):
    """`path` if given, else the cached copy, downloading it from google-research once (clear error when offline)."""
    return DATA.resolve(path, cache_dir, download)


def mbpp_reference_signature(code, where="MBPP code"):
    """P2: the first textual `def ` of the code (it may be a helper or a method), return annotation removed."""
    at = code.find("def ")
    if at < 0:
        raise ValueError(f"{where}: no `def ` in the code")
    return drop_return_annotation(def_header(code[at:]))


def mbpp_check_name(code):
    """E3: the name the reference's MBPP evaluator passes to `check(...)`: from the first `def ` to the first `(`
    anywhere in the code ('' when that `(` comes first, as in task 396)."""
    return code[code.find("def ") + 4:code.find("(")]


def tested_function(code, tests, where="MBPP problem"):
    """Name of the function defined in `code` that the test asserts call (first one called)."""
    try:
        defined = [n.name for n in functions(code)]
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


def in_split(mbpp_id, split, where):
    """Whether task number `mbpp_id` (an int) belongs to `split` of MBPP_SPLITS."""
    if not isinstance(mbpp_id, int) or isinstance(mbpp_id, bool):
        raise ValueError(f"{where}: task_id must be an integer, found {mbpp_id!r}")
    lo, hi = MBPP_SPLITS[split]
    return lo <= mbpp_id <= hi


def mbpp_problem(rec, mbpp_id, dataset, where, **fields):
    """The problem dict of one MBPP-format record (shared with MBPP sanitized)."""
    code = rec["code"].replace("\r\n", "\n")
    return dict(rec, task_id=f"MBPP/{mbpp_id}", mbpp_id=mbpp_id, ref_task_id=mbpp_id, dataset=dataset, code=code,
                entry_point=tested_function(code, rec["test_list"], where), check_name=mbpp_check_name(code),
                **fields)


def load_mbpp(path=None, split="test", cache_dir=None):
    """MBPP problems of one split (test = task ids 11-510) from `path`, else the cache / a download."""
    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; expected one of {', '.join(MBPP_SPLITS)}")
    path = resolve_mbpp_path(path, cache_dir)
    problems = []
    for lineno, rec in read_jsonl(path):
        require(f"{path}:{lineno}", rec, MBPP_KEYS)
        if in_split(rec["task_id"], split, f"{path}:{lineno}"):
            problems.append(mbpp_problem(rec, rec["task_id"], MBPP.name, f"{path}:{lineno} (task {rec['task_id']})"))
    problems.sort(key=lambda p: p["mbpp_id"])
    logger.info("loaded %d MBPP %s problems from %s", len(problems), split, path)
    return problems


class MBPPBenchmark(Benchmark):
    name, title = "mbpp", "MBPP"
    splits, default_split = MBPP_SPLITS, "test"
    data_file_help = ("the dataset's file from google-research/mbpp: mbpp.jsonl (--dataset mbpp) or "
                      "sanitized-mbpp.json (--dataset mbpp_sanitized); default: a cached download")
    # facts of the protocol (verified on the test split: paper 461/500, corrected 500/500)
    expected_failures = {"corrected": frozenset(), "paper": frozenset(f"MBPP/{i}" for i in (
        18, 30, 40, 45, 56, 70, 87, 94, 122, 124, 148, 151, 152, 157, 163, 164, 180, 181, 209, 223, 252, 255, 307,
        317, 323, 338, 342, 348, 349, 364, 367, 372, 381, 396, 466, 485, 486, 496, 501))}

    def load(self, mode="corrected", path=None, split=None):
        self.check_mode(mode)
        return load_mbpp(path, self.check_split(split))

    def data_file(self, mode="corrected", path=None):
        self.check_mode(mode)
        return resolve_mbpp_path(path)

    def decontamination_set(self, mbpp_path=None):
        try:
            path = resolve_mbpp_path(mbpp_path, download=False)
        except FileNotFoundError as exc:
            if mbpp_path is not None:
                raise
            logger.warning("MBPP not used for decontamination: %s", exc)
            return [], {"problems": 0, "path": None, "note": "not found; pass --mbpp-path"}
        with warnings.catch_warnings():  # MBPP reference code has invalid escapes (DeprecationWarning)
            warnings.simplefilter("ignore")
            problems = load_mbpp(path, split="all")
        return problems, {"problems": len(problems), "path": path}

    def normalize_task_id(self, task_id):
        """Accept 11, "11", "MBPP/11" (and evalplus' "Mbpp/11"); a sub-task id like "11_3" is refused."""
        text = str(task_id)
        for prefix in ("MBPP/", "Mbpp/"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        if not text.isdigit():  # int() would read the sub-task id "11_3" as 113
            raise ValueError(f"not an {self.title} task id: {task_id!r}")
        return f"MBPP/{int(text)}"

    def reference_signature(self, problem):
        return mbpp_reference_signature(problem["code"], problem["task_id"])

    def target_function(self, problem, mode):
        """Paper: the first def in the text, at any depth (P2: it may be a helper or a method); corrected: the
        tested one."""
        if mode == "paper":
            every = [n for n in ast.walk(parse_source(problem["code"])) if isinstance(n, (ast.FunctionDef,
                                                                                            ast.AsyncFunctionDef))]
            nodes = sorted(every, key=lambda n: (n.lineno, n.col_offset))
        else:
            nodes = functions(problem["code"])
        if not nodes:
            raise ValueError(f"{problem['task_id']}: no function in the reference code")
        if mode == "paper":
            return problem["code"], nodes[0]
        named = [n for n in nodes if n.name == problem["entry_point"]]
        return problem["code"], (named[-1] if named else nodes[-1])

    def reference_body(self, problem, mode, signature_node):
        """The function's body; paper: the rest of the file (truncated at assembly, as the reference)."""
        source, node = signature_node
        return function_body(source, node, to_end_of_file=mode == "paper")

    def context(self, problem):
        """Reference file without the tested function (imports, globals, helpers), for the corrected mode."""
        source, node = self.target_function(problem, "corrected")
        lines = source.split("\n")
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        return "\n".join(lines[:start] + lines[node.end_lineno:]).strip("\n")

    def program_context(self, problem, signature):
        parts = [self.context(problem), (problem.get("test_setup_code") or "").replace("\r\n", "\n"), signature]
        return "\n".join(p for p in parts if p.strip()) + "\n"

    def program_tests(self, problem, assembly):
        tests = problem["test_list"]
        if assembly == "paper":
            name = problem["check_name"] if "check_name" in problem else mbpp_check_name(problem["code"])
            body = "\n".join(f"    {t}" for t in tests)
            return "\n\n" + f"def check({name}):\n{body}\n\ncheck({name})" + "\n"
        return "\n\n" + "\n".join(tests) + "\n"


MBPP = MBPPBenchmark()
