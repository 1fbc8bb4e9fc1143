"""Keep the README true: every shell command it shows runs (with --help, a dry run, or a tiny real input)."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

README = ROOT / "README.md"
SUBCOMMANDS_WITH_ACTION = {"tokenizer"}


def readme_commands():
    """Shell commands of the README's ```bash blocks (continuations joined, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _run(argv, env=None, timeout=300):
    full_env = dict(os.environ, GLOG_v="3", **(env or {}))
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)


def _check_help(argv):
    proc = _run(argv + ["--help"])
    assert proc.returncode == 0, f"{' '.join(argv)} --help failed:\n{proc.stderr[-2000:]}"
    assert "usage:" in proc.stdout.lower(), proc.stdout[:500]


def test_readme_shows_the_two_commands_first():
    commands = readme_commands()
    assert commands[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, tmp_path):
    words = shlex.split(command)
    if words[0] == "pangu-codeclm":
        sub = words[1:3] if words[1] in SUBCOMMANDS_WITH_ACTION else words[1:2]
        cli = [sys.executable, "-m", "pangu_codeclm.cli"]
        if sub == ["plan"] or (sub == ["rank-table"] and "--check" in words):
            proc = _run(cli + words[1:])  # fast and offline: run for real
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert ("FITS" in proc.stdout) if sub == ["plan"] else ("16" in proc.stdout)
        else:
            _check_help(cli + sub)
    elif words[:2] in (["python", "train.py"], ["python", "eval.py"]):
        _check_help([sys.executable, words[1]])
    elif words[0] == "bash" and words[1] == "scripts/test.sh":
        assert (ROOT / "scripts" / "test.sh").is_file()  # running it here would recurse
    elif words[0] == "bash" and words[1] == "scripts/demo.sh":
        _check_help(["bash", words[1]])
    elif words[0] == "bash" and words[1] == "scripts/run_distribute_train.sh":
        proc = _run(words, env={"DRY_RUN": "1", "OUTPUT": str(tmp_path / "dist"), "PYTHON": sys.executable})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(re.findall(r"RANK_ID=\d", proc.stdout)) == int(words[4])
    elif words[0] == "bash" and words[1].startswith("scripts/run_"):
        proc = _run(["bash", words[1]])  # no arguments: the script must explain its usage, start nothing
        assert proc.returncode != 0 and "usage" in (proc.stdout + proc.stderr).lower()
    else:
        pytest.fail(f"README command not covered by this test: {command}")
