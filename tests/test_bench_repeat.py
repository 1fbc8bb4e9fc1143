"""benchmarks/repeat.py: figures of several runs merged into median [min–max], log noise ignored."""
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import repeat  # noqa: E402


def test_numbers_become_median_and_range_constants_stay():
    runs = [["ratio 2.5x | size 32013", "overhead +3.0%"], ["ratio 2.1x | size 32013", "overhead +3.9%"],
            ["ratio 2.9x | size 32013", "overhead +3.4%"]]
    assert repeat.combine(runs) == ["ratio 2.5 [2.1–2.9]x | size 32013", "overhead +3.4 [+3.0–+3.9]%"]


def test_thousands_separators_and_log_lines():
    runs = [["2026-12-01 09:15:33,375 - INFO - x 17", "x 1,735 pairs/s"],
            ["2026-12-01 09:16:01,001 - INFO - y", "x 1,900 pairs/s"]]
    assert repeat.combine(runs) == ["x 1,818 [1,735–1,900] pairs/s"]


def test_a_line_missing_from_one_run_is_printed_per_run():
    runs = [["a 1.0", "warning: slow 3"], ["a 2.0"]]
    assert repeat.combine(runs) == ["a 1.5 [1.0–2.0]", "[run 1] warning: slow 3"]


def test_column_padding_does_not_split_a_line():
    runs = [["stage   1.06     7628       9847"], ["stage   1.05     7711      10158"]]
    assert repeat.combine(runs) == ["stage   1.06 [1.05–1.06]     7670 [7628–7711]       10002 [9847–10158]"]


def test_a_verdict_that_changes_between_runs_is_counted():
    """`met` in one run and `NOT met` in another: one merged line saying in how many runs the target was met."""
    runs = [["decode, batch 8: ratio 1.9x (met)", "decode, batch 16: ratio 1.4x (NOT met)", "end 1"],
            ["decode, batch 8: ratio 2.1x (met)", "decode, batch 16: ratio 1.6x (met)", "end 3"],
            ["decode, batch 8: ratio 2.0x (met)", "decode, batch 16: ratio 1.2x (NOT met)", "end 2"]]
    assert repeat.combine(runs) == [
        "decode, batch 8: ratio 2.0 [1.9–2.1]x (met)", "decode, batch 16: ratio 1.4 [1.2–1.6]x (met in 1 of 3 runs)",
        "end 2 [1–3]"]
