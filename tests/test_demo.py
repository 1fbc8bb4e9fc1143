"""The demo runner: stages resume, a failing stage names itself and its log, --fresh starts over."""
import argparse
import json
import sys

import pytest

from pangu_codeclm.cli import main as cli_main
from pangu_codeclm.commands import demo as demo_cmd
from pangu_codeclm.demo import Demo, StageFailed


def make_demo(workdir):
    parser = argparse.ArgumentParser()
    demo_cmd.add_arguments(parser)
    return Demo(parser.parse_args(["--workdir", str(workdir)]))


def test_finished_stage_is_recorded_and_skipped(tmp_path, capsys):
    demo = make_demo(tmp_path)
    calls = []

    def stage():
        demo.run_command("echo", [sys.executable, "-c", "print('hello from the stage')"])
        calls.append(1)
        return {"answer": 42}

    assert demo.stage("first", stage) == {"answer": 42}
    assert demo.stage("first", stage) == {"answer": 42}
    assert calls == [1]  # the second run resumed instead of running again
    record = json.loads((tmp_path / "state" / "first.json").read_text())
    assert record["summary"] == {"answer": 42} and record["seconds"] >= 0
    assert "hello from the stage" in (tmp_path / "logs" / "echo.log").read_text()
    out = capsys.readouterr().out
    assert "first" in out and "done earlier" in out and "answer=42" in out


def test_failing_stage_stops_with_its_name_and_log(tmp_path):
    demo = make_demo(tmp_path)

    def stage():
        demo.run_command("broken", [sys.executable, "-c", "import sys; print('boom detail'); sys.exit(3)"])

    with pytest.raises(StageFailed) as info:
        demo.stage("broken", stage)
    message = str(info.value)
    assert "stage 'broken' failed (exit code 3)" in message
    assert str(tmp_path / "logs" / "broken.log") in message and "boom detail" in message
    assert not (tmp_path / "state" / "broken.json").exists()  # a failed stage is not marked done


def test_main_reports_the_failed_stage_and_fresh_starts_over(tmp_path, monkeypatch, capsys):
    import pangu_codeclm.demo_stages as stages

    def run_all(demo):
        demo.stage("ok", lambda: {"n": 1})
        demo.stage("bad", lambda: demo.run_command("bad", [sys.executable, "-c", "raise SystemExit(1)"]))

    monkeypatch.setattr(stages, "run_all", run_all)
    assert cli_main(["demo", "--workdir", str(tmp_path / "w")]) == 1
    assert "FAILED: stage 'bad' failed" in capsys.readouterr().err
    assert (tmp_path / "w" / "state" / "ok.json").exists()
    (tmp_path / "w" / "stale.txt").write_text("old")
    assert cli_main(["demo", "--workdir", str(tmp_path / "w"), "--fresh"]) == 1
    assert not (tmp_path / "w" / "stale.txt").exists()


def test_parse_rate_survives_hostile_completions(tmp_path):
    from pangu_codeclm.demo_stages import _parse_rate

    rows = [{"prompt": "def f(x):\n", "completion": "    return x\n"},
            {"prompt": "def g(x):\n", "completion": "    return (\n"},  # SyntaxError
            {"prompt": "def h(t):\n", "completion": "    [i = [i, " + "[" * 200 + "\n"},  # the parser's MemoryError
            {"prompt": "def k():\n", "completion": "    return " + "-" * 100_000 + "1\n"}]  # deep unary nesting
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _parse_rate(str(path)) == pytest.approx(1 / 4)
