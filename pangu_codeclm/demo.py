"""The demo's stage runner: each stage runs `pangu-codeclm` steps as subprocesses with their own log and a progress
bar; a finished stage leaves a JSON record in `<workdir>/state/` and is skipped on the next run.

The demo's stages are in `demo_stages` (mine -> tokenizer -> prepare -> train -> export -> evaluate -> torch parity ->
results table), the grid's cells in `grid`; the command is `pangu-codeclm demo` (`commands/demo.py`).
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

from tqdm import tqdm

from .io_utils import atomic_write_json

# Log lines not worth showing beside the progress bar (framework chatter).
_NOISE = re.compile(r"WARNING|\[WARNING\]|deprecated|hyper_parallel|^\$ |INFO - \.{3}")


class StageFailed(RuntimeError):
    """A demo stage failed; the message names the stage and its log."""


class Demo:
    """Runs the stages in order, resuming finished ones."""

    def __init__(self, args):
        self.args = args
        self.workdir = os.path.abspath(args.workdir)
        self.state_dir = os.path.join(self.workdir, "state")
        self.log_dir = os.path.join(self.workdir, "logs")
        self.results = {}

    # -------------------------------------------------------------- paths
    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _state_file(self, name):
        return os.path.join(self.state_dir, f"{name}.json")

    # -------------------------------------------------------------- running
    def run_command(self, name, argv, budget_s=None):
        """Run one command with its output in logs/<name>.log and a progress bar on the console."""
        os.makedirs(self.log_dir, exist_ok=True)
        log_path = os.path.join(self.log_dir, f"{name}.log")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
        with open(log_path, "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(argv) + "\n")
            log.flush()
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir, env=env)
            done = threading.Event()
            bar = tqdm(total=budget_s, desc=f"[{name}]", unit="s", leave=False, dynamic_ncols=True, disable=None,
                       bar_format="{desc} {elapsed}" + (" {percentage:3.0f}%|{bar}|" if budget_s else "") + " {postfix}")

            def tick():
                start = time.monotonic()
                while not done.wait(2.0):
                    elapsed = time.monotonic() - start
                    bar.n = min(elapsed, budget_s) if budget_s else elapsed
                    bar.set_postfix_str(_last_line(log_path)[-60:], refresh=False)
                    bar.refresh()

            thread = threading.Thread(target=tick, daemon=True)
            thread.start()
            try:
                rc = proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
                raise
            finally:
                done.set()
                thread.join()
                bar.close()
        if rc != 0:
            raise StageFailed(f"stage '{name}' failed (exit code {rc}); see its log: {log_path}\n"
                              + _tail(log_path, 15))
        return log_path

    def stage(self, name, func):
        """Run `func()` unless the stage already finished; record its summary and wall time."""
        state_path = self._state_file(name)
        if os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as f:
                record = json.load(f)
            print(f"[demo] {name:<10} done earlier ({record['seconds']:.0f} s): {record['summary_line']}")
        else:
            start = time.time()
            summary = func() or {}
            record = {"seconds": time.time() - start, "summary": summary,
                      "summary_line": ", ".join(f"{k}={_fmt(v)}" for k, v in summary.items())}
            atomic_write_json(state_path, record)
            print(f"[demo] {name:<10} {record['seconds']:.0f} s: {record['summary_line']}")
        self.results[name] = record
        return record["summary"]

    def cli(self, *args):
        return [sys.executable, "-m", "pangu_codeclm.cli", *map(str, args)]


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2048))
            chunk = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in chunk.replace("\r", "\n").split("\n")
             if line.strip() and not _NOISE.search(line)]
    return lines[-1].strip() if lines else ""


def _tail(path, n):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().replace("\r", "\n").splitlines()
    return "\n".join("    " + line for line in lines[-n:])

