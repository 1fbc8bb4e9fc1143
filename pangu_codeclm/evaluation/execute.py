"""Sandboxed execution of generated programs: the `Executor` client of a warm fork server.

`Executor` starts `sandbox_server.py` as a fresh Python process (never a fork of a process that holds MindSpore
threads) from a minimal environment, sends it programs and collects one result per program, in input order. The
server (`sandbox_server`) isolates the network and the work dirs and forks one sandboxed process per program
(`sandbox_program`: rlimits, a fresh cwd, a fixed environment, an audit hook, a private uid as root). Without root a
program also runs as the evaluator's user and can read what that user can (its files, /proc/<evaluator pid>/environ):
only root gets private uids.

A program passes only if its code ran to the end, no thread outlived it, and it then wrote the job's random nonce to a
private pipe: `sys.exit(0)`, `os._exit(0)`, signals or a killed parent before the tests finish all count as failures.
"""
import logging
import os
import subprocess
import sys
import threading

from . import sandbox_server
from .sandbox_program import SANDBOX_ENV
from .sandbox_server import recv, send

logger = logging.getLogger(__name__)

DEFAULT_PRELOAD = ("math", "re", "sys", "copy", "datetime", "itertools", "collections", "heapq", "statistics",
                   "functools", "hashlib", "string", "typing", "random", "bisect", "operator", "fractions", "decimal",
                   "cmath", "array", "json", "ctypes", "numpy")
DEFAULT_LIMITS = {"address_space": 4 << 30, "cpu_seconds": None, "processes": 64, "file_size": 64 << 20,
                  "open_files": 256, "output_bytes": 1 << 20, "scratch_bytes": 1 << 30}
STATUSES = ("passed", "failed", "timed_out", "exited_early", "killed", "output_limit", "thread_left", "error")
SERVER_INHERITED = ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH")  # what the server may take from the evaluator
SERVER_SCRIPT = os.path.abspath(sandbox_server.__file__)


class ExecutorError(RuntimeError):
    """The execution server died or answered something unexpected."""


class Executor:
    """Run programs in the sandbox: `with Executor(workers=4, timeout=5) as ex: results = ex.run(programs)`.

    Each result is a dict: status (one of STATUSES), passed (bool), detail, exit_code, stdout, stderr, seconds.
    Results come back in input order and do not depend on the worker count.
    """

    def __init__(self, workers=1, timeout=5.0, limits=None, network=False, preload=DEFAULT_PRELOAD,
                 sandbox_user=True, guard=True, tmp_root=None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        unknown = set(limits or {}) - set(DEFAULT_LIMITS)
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; expected some of {sorted(DEFAULT_LIMITS)}")
        self.workers = int(workers)
        self.timeout = float(timeout)
        self.limits = dict(DEFAULT_LIMITS, **(limits or {}))
        self.config = {"workers": self.workers, "limits": self.limits, "network": bool(network),
                       "preload": list(preload), "sandbox_user": bool(sandbox_user), "guard": bool(guard),
                       "tmp_root": tmp_root, "scratch": None}
        self._proc = None
        self._lock = threading.Lock()
        self.info = {}

    def start(self):
        """Start the fork server (a fresh interpreter running this file) and wait until it is ready."""
        if self._proc is not None:
            return self
        if self.config["tmp_root"] is None:  # a private scratch dir; the server mounts a size-capped tmpfs on it
            import tempfile
            self.config["scratch"] = tempfile.mkdtemp(prefix="pangu_exec_scratch_")
            os.chmod(self.config["scratch"], 0o711)
        env = dict(SANDBOX_ENV, **{name: os.environ[name] for name in SERVER_INHERITED if name in os.environ})
        self._proc = subprocess.Popen([sys.executable, SERVER_SCRIPT, "--serve"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, close_fds=True, start_new_session=True)
        send(self._proc.stdin.fileno(), self.config)
        hello = recv(self._proc.stdout.fileno())
        if not hello or hello.get("ready") is not True:
            raise ExecutorError(f"execution server failed to start: {self._stderr_tail()}")
        self.info = hello
        for warning in hello.get("warnings", []):
            logger.warning("executor: %s", warning)
        logger.info("executor ready: %d worker(s), network %s, sandbox uid %s, preloaded %d modules",
                    self.workers, hello.get("network"), hello.get("sandbox_uid"), len(hello.get("preloaded", [])))
        return self

    def _stderr_tail(self):
        try:
            self._proc.kill()
            return self._proc.stderr.read()[-2000:].decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - best effort diagnostics
            return "(no stderr)"

    def run(self, programs, timeout=None, progress=None):
        """Execute each program string; returns a list of result dicts in the same order."""
        programs = list(programs)
        if not programs:
            return []
        self.start()
        timeout = float(timeout or self.timeout)
        results = [None] * len(programs)
        with self._lock:
            writer_error = []

            def feed():
                try:
                    for index, program in enumerate(programs):
                        send(self._proc.stdin.fileno(), {"id": index, "program": program, "timeout": timeout})
                except OSError as exc:
                    writer_error.append(exc)

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            for _ in programs:
                message = recv(self._proc.stdout.fileno())
                if message is None:
                    raise ExecutorError(f"execution server died: {self._stderr_tail()}")
                results[message.pop("id")] = message
                if progress is not None:
                    progress(message)
            writer.join()
            if writer_error:
                raise ExecutorError(f"could not send programs to the execution server: {writer_error[0]}")
        return results

    def close(self):
        """Stop the server (it kills any program still running and removes its temp dirs)."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()
        self._proc = None
        if self.config["scratch"]:
            import shutil
            shutil.rmtree(self.config["scratch"], ignore_errors=True)
            self.config["scratch"] = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def run_programs(programs, workers=1, timeout=5.0, **kwargs):
    """One-shot helper: start an executor, run `programs`, stop it."""
    with Executor(workers=workers, timeout=timeout, **kwargs) as executor:
        return executor.run(programs)
