"""`pangu-codeclm mine`: (docstring, code) pairs from Python source trees, in the python_text2code record format.

Per file (the dataset card's filters): size < 1 MB, decodes, parses as Python 3, mean line length < 100, no line of
1000+ characters. Per function/method with a non-empty docstring: the docstring statement is removed from the code
(functions whose body is only a docstring, or whose docstring shares a line with other code, are skipped) and the
code is converted to marker text with `codefmt.source_to_markers`. A pair whose source contains a special-token
string (`<eot>`, `<NEW_LINE>`, ...) is dropped: the tokenizer would read it as that token. Exact duplicates (same
normalised code) are dropped keeping the first in file order, and pairs matching a HumanEval/MBPP problem are dropped
(see `decontaminate`). Files are processed in parallel; output order is deterministic.
"""
import ast
import contextlib
import gc
import hashlib
import io
import logging
import os
import re
import sysconfig
import time
import tokenize
import warnings
from collections import Counter
from dataclasses import dataclass, field

from pangu_codeclm.data.decontaminate import code_tokens, docstring_stmt, iter_functions
from pangu_codeclm.tokenization.base import SPECIAL_TOKENS

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
MAX_MEAN_LINE = 100
MAX_LINE = 1000
SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".tox", "node_modules"}
# A docstring can only follow a line ending in ':' (then blank/comment lines) as an indented plain or r/u string;
# a file without any such spot cannot give a pair, so it is not parsed (parsing dominates the miner's time).
_DOCSTRING_SPOT = re.compile(r""":[ \t]*(?:#[^\n]*)?\r?\n(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]+[rRuU]?["']""")
NO_CANDIDATE = "no docstring candidate (not parsed)"
# text that the tokenizer would read as a special token or a code marker cannot be in a pair's source
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
HAS_SPECIAL = "contains a special-token string"


@dataclass
class FileResult:
    """What one file gave: a skip reason, or pairs `(key, docstring, code)` and per-function drop reasons."""
    path: str
    skipped: str = None
    pairs: list = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    functions: int = 0


def default_sources():
    """This Python's stdlib and site-packages directories."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(p for p in (paths["stdlib"], paths["purelib"], paths["platlib"]) if os.path.isdir(p)))


def find_python_files(sources, limit=None, skip_dirs=SKIP_DIRS):
    """Sorted .py files under each source (a file or a directory), each real file once; at most `limit`.

    Directories named in `skip_dirs` are not entered.
    """
    seen, files = set(), []
    for src in sources:
        src = os.fspath(src)
        if not os.path.exists(src):
            raise FileNotFoundError(f"source not found: {src}")
        if os.path.isfile(src):
            candidates = [src]
        else:
            candidates = []
            for root, dirs, names in os.walk(src):
                dirs[:] = sorted(d for d in dirs if d not in skip_dirs)
                candidates += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
        for path in candidates:
            real = os.path.realpath(path)
            if real not in seen and os.path.isfile(real):
                seen.add(real)
                files.append(path)
                if limit and len(files) >= limit:
                    return files
    return files


def read_source(path):
    """(text, None) or (None, skip reason) after the size, decoding and line filters."""
    try:
        if os.path.getsize(path) >= MAX_FILE_BYTES:
            return None, "file >= 1 MB"
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None, "unreadable"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return None, "cannot decode"
    lines = text.splitlines()
    if not lines:
        return None, "empty"
    if max(map(len, lines)) >= MAX_LINE:
        return None, "line >= 1000 chars"
    if sum(map(len, lines)) / len(lines) >= MAX_MEAN_LINE:
        return None, "mean line length >= 100"
    return text, None


def code_key(tokens):
    """Hex hash of a function's normalised code: its `code_tokens` (whitespace and line breaks ignored)."""
    return hashlib.sha1(" ".join(tokens).encode("utf-8")).hexdigest()


def _byte_col_prefix(line, col):
    """Text before byte offset `col` of `line` (AST offsets count UTF-8 bytes)."""
    return line.encode("utf-8")[:col].decode("utf-8", "replace")


def extract_function(lines, node):
    """(docstring, source of the function without its docstring) or (None, drop reason | None if no docstring).

    The source keeps the method's own indentation (codefmt removes it), so multi-line strings stay verbatim.
    """
    stmt = docstring_stmt(node)
    doc = ast.get_docstring(node, clean=True) if stmt is not None else None
    if not doc or not doc.strip():
        return None, None
    if len(node.body) == 1:
        return None, "body is only a docstring"
    if stmt.lineno == node.lineno:
        return None, "docstring on the def line"
    first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
    after = last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", "replace").strip()
    if _byte_col_prefix(first, stmt.col_offset).strip() or (after and not after.startswith("#")):
        return None, "docstring shares a line with code"
    if node.body[1].lineno <= stmt.end_lineno:
        return None, "docstring shares a line with code"
    kept = lines[node.lineno - 1:stmt.lineno - 1] + lines[stmt.end_lineno:node.end_lineno]
    return doc, "".join(kept)


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while a file is mined: parsing allocates a whole AST (no cycles) that
    would trigger many collections that free nothing. The tree is freed by reference counting before the collector
    resumes, so it never scans it (together about a fifth of the miner's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def mine_source(text, path, decontaminator=None):
    """FileResult for the already-filtered source `text` of `path`."""
    from pangu_codeclm.codefmt import source_to_markers

    result = FileResult(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        result.skipped = "not Python 3"
        return result
    # split like the parser counts lines (\n, \r\n, \r), not like str.splitlines (which also splits on \f, \u2028, ...)
    lines = io.StringIO(text, newline="").readlines()
    for node in iter_functions(tree):
        doc, code = extract_function(lines, node)
        if doc is None:
            if code is not None:
                result.functions += 1
                result.dropped[code] += 1
            continue
        result.functions += 1
        if _SPECIAL.search(doc) or _SPECIAL.search(code):
            result.dropped[HAS_SPECIAL] += 1
            continue
        tokens = code_tokens(code)
        if decontaminator is not None:
            hit = decontaminator.check(doc, code, node, tokens)
            if hit is not None:
                result.dropped[hit.reason] += 1
                continue
        try:
            markers = source_to_markers(code)
        except Exception:  # hostile input: any failure of the converter drops the function, counted
            result.dropped["codefmt failed"] += 1
            continue
        result.pairs.append((code_key(tokens), doc, markers))
    return result


def candidate_source(path):
    """(text, None) for a file the miner goes on to parse, else (None, skip reason)."""
    text, reason = read_source(path)
    if reason:
        return None, reason
    if not _DOCSTRING_SPOT.search(text):
        return None, NO_CANDIDATE
    return text, None


def mine_file(path, decontaminator=None):
    """Read, filter and mine one file. A file the miner fails on (hostile source finding a case it does not handle)
    is skipped, counted under its error type and logged with its path; the run goes on."""
    text, reason = candidate_source(path)
    if reason:
        return FileResult(path, skipped=reason)
    try:
        with collector_paused():
            return mine_source(text, path, decontaminator)
    except Exception as exc:  # one bad file must not lose a run over thousands
        logger.warning("%s: skipped, the miner failed on it: %s: %s", path, type(exc).__name__, exc)
        return FileResult(path, skipped=f"miner error ({type(exc).__name__})")


_WORKER_DECON = None


def _init_worker(decontaminator, forked=False):
    global _WORKER_DECON
    _WORKER_DECON = decontaminator
    warnings.simplefilter("ignore")
    if forked:  # what the worker inherited (the decontamination index) is never scanned by the collector again
        gc.freeze()


def _work(path):
    return mine_file(path, _WORKER_DECON)


def iter_file_results(files, decontaminator=None, workers=1, progress=True):
    """FileResults in file order, computed by `workers` processes, with a tqdm bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(files), desc="mine", unit="file", disable=not progress, mininterval=1.0)
    try:
        if workers <= 1:
            with warnings.catch_warnings():  # the worker setup silences warnings: not for the caller's process
                _init_worker(decontaminator)
                for path in files:
                    yield _work(path)
                    bar.update(1)
        else:
            import multiprocessing as mp

            context = mp.get_context("fork")
            with context.Pool(workers, initializer=_init_worker, initargs=(decontaminator, True)) as pool:
                for result in pool.imap(_work, files, chunksize=8):
                    yield result
                    bar.update(1)
    finally:
        bar.close()


def iter_pairs(file_results, summary):
    """Deduplicated records from FileResults, counting everything in `summary` (see `new_summary`)."""
    seen = set()
    for res in file_results:
        if res.skipped:
            summary["files_skipped"][res.skipped] += 1
            continue
        summary["files_read"] += 1
        summary["functions_with_docstring"] += res.functions
        summary["pairs_dropped"].update(res.dropped)
        for key, doc, code in res.pairs:
            if key in seen:
                summary["pairs_dropped"]["exact duplicate"] += 1
                continue
            seen.add(key)
            summary["pairs_kept"] += 1
            yield {"_id": key[:20], "docstring": doc, "code": code}


def new_summary():
    return {"files_found": 0, "files_read": 0, "files_skipped": Counter(), "functions_with_docstring": 0,
            "pairs_kept": 0, "pairs_dropped": Counter(), "decontamination": {}}


def mine(sources, out, workers=1, mbpp_path=None, limit_files=None, decontaminate=True, progress=True):
    """Mine `sources` into the record file `out` (atomically); return the summary dict."""
    from pangu_codeclm.data.decontaminate import Decontaminator, load_benchmarks
    from pangu_codeclm.data.records import RecordWriter

    start = time.perf_counter()
    sources = list(sources) or default_sources()
    files = find_python_files(sources, limit_files)
    summary = new_summary()
    summary["sources"] = [os.path.abspath(s) for s in sources]
    summary["files_found"] = len(files)
    logger.info("mining %d .py files from %s with %d worker(s)", len(files), ", ".join(sources), workers)
    decon = None
    if decontaminate:
        problems, used = load_benchmarks(mbpp_path)
        decon = Decontaminator(problems)
        summary["decontamination"] = used
    with RecordWriter(out) as writer:
        for record in iter_pairs(iter_file_results(files, decon, workers, progress), summary):
            writer.write(record)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["pairs_per_second"] = round(summary["pairs_kept"] / max(summary["seconds"], 1e-9), 1)
    summary["out"] = os.path.abspath(out)
    summary["files_skipped"] = dict(summary["files_skipped"].most_common())
    summary["pairs_dropped"] = dict(summary["pairs_dropped"].most_common())
    summary["contaminated"] = sum(v for k, v in summary["pairs_dropped"].items() if k.startswith("contaminated"))
    return summary


def format_summary(summary):
    """Human-readable summary lines."""
    lines = [f"files: {summary['files_found']} found, {summary['files_read']} read, "
             f"{sum(summary['files_skipped'].values())} skipped"]
    lines += [f"  skipped ({reason}): {n}" for reason, n in summary["files_skipped"].items()]
    lines.append(f"functions with a docstring: {summary['functions_with_docstring']}")
    lines.append(f"pairs kept: {summary['pairs_kept']}  ({summary['pairs_per_second']} pairs/s, "
                 f"{summary['seconds']} s)")
    lines += [f"  dropped ({reason}): {n}" for reason, n in summary["pairs_dropped"].items()]
    used = summary.get("decontamination") or {}
    if used:
        sets = ", ".join(f"{name} ({info['problems']} problems from {info['path']})" for name, info in used.items())
        lines.append(f"decontaminated against: {sets}; dropped {summary['contaminated']}")
    else:
        lines.append("decontamination: off")
    lines.append(f"wrote {summary['pairs_kept']} records to {summary['out']}")
    return "\n".join(lines)
