"""pass@k: agreement with the exact binomial formula, the k <= n rule, and incremental macro/micro pooling."""
import math

import pytest

from pangu_codeclm.evaluation import metrics


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (200, 7, 100), (200, 0, 10),
                                   (200, 199, 100), (5, 5, 5)])
def test_pass_at_k_matches_exact_binomial(n, c, k):
    exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert metrics.pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_pass_at_1_is_fraction_passed():
    assert metrics.pass_at_k(200, 37, 1) == pytest.approx(37 / 200)


def test_large_n_is_stable():
    # C(1000, 500) overflows float64; the product form agrees with exact rational arithmetic.
    from fractions import Fraction
    exact = 1 - Fraction(math.comb(997, 500), math.comb(1000, 500))
    assert metrics.pass_at_k(1000, 3, 500) == pytest.approx(float(exact), rel=1e-12)


def test_k_larger_than_n_is_refused():
    with pytest.raises(ValueError, match="k <= n"):
        metrics.pass_at_k(5, 1, 10)
    with pytest.raises(ValueError, match="c <= n"):
        metrics.pass_at_k(5, 6, 1)


def test_mean_reports_only_k_up_to_smallest_n():
    counts = {"a": (10, 5), "b": (3, 0)}
    table = metrics.mean_pass_at_k(counts, [1, 3, 10])
    assert set(table) == {"pass@1", "pass@3"}
    assert table["pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    summary = metrics.summarize(counts, [1, 3, 10])
    assert summary["skipped_k"] == [10] and summary["samples"] == 13 and summary["passed"] == 5


def test_count_results_keeps_order_and_counts():
    records = [{"task_id": "t2", "passed": True}, {"task_id": "t1", "passed": False},
               {"task_id": "t2", "passed": False}]
    assert list(metrics.count_results(records).items()) == [("t2", (2, 1)), ("t1", (1, 0))]


def test_incremental_macro_and_micro():
    sub = {metrics.subtask_id("HumanEval/0", 0): (2, 0), metrics.subtask_id("HumanEval/0", 1): (2, 2),
           metrics.subtask_id("HumanEval/1", 0): (2, 1)}
    assert metrics.parse_subtask_id("HumanEval/0_1") == ("HumanEval/0", 1)
    summary = metrics.summarize(sub, [1, 2], incremental=True)
    assert summary["macro"]["pass@1"] == pytest.approx((0 + 1 + 0.5) / 3)
    # micro pools per problem: HumanEval/0 -> (4, 2), HumanEval/1 -> (2, 1)
    assert summary["micro"]["pass@1"] == pytest.approx((0.5 + 0.5) / 2)
    assert summary["micro"]["pass@2"] == pytest.approx(((1 - 1 / 6) + 1.0) / 2)
    assert summary["problems"] == 2
    assert summary["by_given_lines"]["0"]["tasks"] == 2
    assert summary["by_given_lines"]["1"]["pass@1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sub-task"):
        metrics.parse_subtask_id("HumanEval/0")
