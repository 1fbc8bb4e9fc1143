"""MBPP sanitized (google-research `sanitized-mbpp.json`, 427 hand-verified tasks: the set evalplus and bigcode report).

The file is one JSON list of {source_file, task_id, prompt, code, test_imports, test_list}. A problem is laid out as
an MBPP one (task ids `MBPP/N`, `mbpp_id` N, the same splits by task id; the default split `all` is the whole set):
its `text` (the NL the model sees) is the `prompt` field, and `test_imports` become its `test_setup_code`. It is
evaluated in corrected mode only, exactly as MBPP's corrected mode: the signature of the function the tests call,
completed inside the reference file's context (imports, globals, helpers, then the test imports), the asserts run as
they are. The reference harness never evaluated this set, so there is no paper mode to reproduce: `--mode paper` is
refused with that reason.
"""
import json
import logging
import os

from .base import DataFile, require
from .mbpp import MBPP_SPLITS, MBPPBenchmark, in_split, mbpp_problem

logger = logging.getLogger(__name__)

SANITIZED_URL = "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/sanitized-mbpp.json"
SANITIZED_KEYS = ("task_id", "prompt", "code", "test_imports", "test_list")
DATA = DataFile("mbpp", "sanitized-mbpp.json", SANITIZED_URL, "MBPP sanitized", "--mbpp-path",
                "google-research/mbpp")


def read_sanitized(path):
    """The records of a sanitized-mbpp.json (a JSON list of objects); ValueError naming the file and record."""
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of task objects, found {type(records).__name__}")
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: record {index}: expected a JSON object, found {type(rec).__name__}")
        require(f"{path}: record {index}", rec, SANITIZED_KEYS)
    return records


def load_mbpp_sanitized(path=None, split="all", cache_dir=None):
    """MBPP sanitized problems of one split (`all`: the 427 tasks) from `path`, else the cache / a download."""
    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP sanitized split {split!r}; expected one of {', '.join(MBPP_SPLITS)}")
    path = DATA.resolve(path, cache_dir)
    problems = []
    for index, rec in enumerate(read_sanitized(path)):
        where = f"{path}: record {index}"
        if in_split(rec["task_id"], split, where):
            problems.append(mbpp_problem(rec, rec["task_id"], MBPP_SANITIZED.name, f"{where} (task {rec['task_id']})",
                                         text=rec["prompt"], test_setup_code="\n".join(rec["test_imports"])))
    problems.sort(key=lambda p: p["mbpp_id"])
    logger.info("loaded %d MBPP sanitized %s problems from %s", len(problems), split, path)
    return problems


class MBPPSanitized(MBPPBenchmark):
    name, title = "mbpp_sanitized", "MBPP sanitized"
    modes = ("corrected",)
    default_split = "all"
    # facts of the data (verified in the sandbox: 427/427 canonical solutions pass in corrected mode)
    expected_failures = {"corrected": frozenset()}

    def no_mode_reason(self, mode):
        if mode == "paper":
            return "the reference harness evaluates MBPP's full test split only, never the sanitized set"
        return super().no_mode_reason(mode)

    def load(self, mode="corrected", path=None, split=None):
        self.check_mode(mode)
        return load_mbpp_sanitized(path, self.check_split(split))

    def data_file(self, mode="corrected", path=None):
        self.check_mode(mode)
        return DATA.resolve(path)

    def decontamination_set(self, mbpp_path=None):
        """From `mbpp_path` if it is the sanitized file, else the sanitized-mbpp.json beside it, else the cache;
        none of them: not used (a note says so)."""
        path = None
        if mbpp_path is not None:
            beside = os.path.join(os.path.dirname(os.fspath(mbpp_path)), DATA.filename)
            path = next((p for p in (mbpp_path, beside) if os.path.basename(os.fspath(p)) == DATA.filename
                         and os.path.isfile(p)), None)
        try:
            path = path or DATA.resolve(None, download=False)
        except FileNotFoundError as exc:
            logger.warning("MBPP sanitized not used for decontamination: %s", exc)
            return [], {"problems": 0, "path": None, "note": f"not found; pass --mbpp-path with {DATA.filename} "
                                                             f"beside mbpp.jsonl"}
        problems = load_mbpp_sanitized(path)
        return problems, {"problems": len(problems), "path": os.fspath(path)}


MBPP_SANITIZED = MBPPSanitized()
