"""Metrics against hand-computed values."""

import pyarrow as pa
import pytest

from ray_jobs.metrics.analysis import (
    Run,
    failure_breakdown,
    paired_comparison,
    pass_at_k_with_ci,
    runtime_vs_canonical,
    sign_test_p,
)
from ray_jobs.metrics.quality import quality_metrics, radon_metrics
from ray_jobs.storage import schemas


def test_pass_at_k_and_bootstrap_ci_on_a_small_table():
    counts = {"a": (2, 1), "b": (2, 2), "c": (2, 0)}
    got = pass_at_k_with_ci(counts, ks=(1, 2, 5), n_boot=4000)
    assert set(got) == {1, 2}  # k=5 > n
    assert got[1]["estimate"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert got[2]["estimate"] == pytest.approx((1 + 1 + 0) / 3)
    # resampling 3 tasks: the mean of pass@1 ranges over {0, 1/6, ..., 1}; the 95% band is inside
    assert 0 <= got[1]["ci_low"] < got[1]["estimate"] < got[1]["ci_high"] <= 1
    same = pass_at_k_with_ci({"a": (4, 4), "b": (4, 4)}, ks=(1,))
    assert same[1] == {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0}


def test_sign_test_exact_values():
    assert sign_test_p(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert sign_test_p(3, 3) == 1.0 and sign_test_p(0, 0) == 1.0


def test_paired_comparison_known_answer():
    a = {"t1": (4, 0), "t2": (4, 4), "t3": (4, 2)}
    b = {"t1": (4, 4), "t2": (4, 4), "t3": (4, 0), "t4": (4, 4)}
    cmp = paired_comparison(a, b)
    assert cmp["tasks"] == 3
    assert cmp["mean_difference"] == pytest.approx((1 + 0 - 0.5) / 3)
    assert (cmp["tasks_better"], cmp["tasks_worse"]) == (1, 1) and cmp["p_sign_test"] == 1.0
    assert cmp["gained"] == ["t1"] and cmp["lost"] == ["t3"]
    big = paired_comparison({f"t{i}": (10, 0) for i in range(30)}, {f"t{i}": (10, 5) for i in range(30)})
    assert big["p_bootstrap"] < 0.001 and big["p_sign_test"] < 1e-8 and big["ci_low"] == pytest.approx(0.5)


def _results(rows):
    return pa.Table.from_pylist(
        [{"error_type": None, "error_message": None, "duration_s": 0.1, "config_id": "c", **r} for r in rows],
        schema=schemas.RESULTS,
    )


def test_failure_breakdown_separates_truncation_and_generation_errors():
    results = _results(
        [
            {"task_id": "T/0", "completion_id": 0, "suite": "base", "passed": True, "status": "passed"},
            {"task_id": "T/0", "completion_id": 1, "suite": "base", "passed": False, "status": "syntax_error"},
            {"task_id": "T/0", "completion_id": 2, "suite": "base", "passed": False, "status": "syntax_error"},
            {"task_id": "T/0", "completion_id": 3, "suite": "base", "passed": False, "status": "empty"},
            {
                "task_id": "T/0",
                "completion_id": 4,
                "suite": "base",
                "passed": False,
                "status": "error",
                "error_type": "KeyError",
            },
        ]
    )
    gens = pa.Table.from_pylist(
        [
            {
                "task_id": "T/0",
                "completion_id": i,
                "config_id": "c",
                "response": "",
                "completion": "",
                "finish_reason": reason,
            }
            for i, reason in enumerate(["stop", "length", "stop", "error", "stop"])
        ],
        schema=schemas.GENERATIONS,
    )
    breakdown = failure_breakdown(Run("r", None, results, gens, {}), "base")
    assert breakdown == {"passed": 1, "truncated": 1, "syntax_error": 1, "generation_error": 1, "error:KeyError": 1}


def test_runtime_vs_canonical_uses_passed_rows_with_both_timings():
    def row(i, passed, runtime, canonical, suite="base"):
        return {
            "task_id": f"T/{i}",
            "completion_id": 0,
            "suite": suite,
            "passed": passed,
            "status": "passed" if passed else "failed",
            "runtime_s": runtime,
            "canonical_runtime_s": canonical,
        }

    results = _results(
        [
            row(0, True, 1.0, 1.0),
            row(1, True, 3.0, 1.0),
            row(2, True, 0.5, 1.0),
            row(3, True, 8.0, 2.0),
            row(4, False, None, None),
            row(5, True, 2.0, None),
            row(6, True, 9.0, 1.0, "plus"),
        ]
    )
    got = runtime_vs_canonical(Run("r", None, results, None, {}), "base")
    assert sorted(got["ratios"]) == [0.5, 1.0, 3.0, 4.0]
    assert got["samples"] == 4 and got["median"] == 2.0 and got["share_over_2x"] == 0.5
    assert runtime_vs_canonical(Run("r", None, results, None, {}), "plus")["ratios"] == [9.0]
    assert runtime_vs_canonical(Run("r", None, results.slice(4, 2), None, {}), "base") == {"samples": 0}


def test_quality_metrics_on_known_code():
    code = (
        "import os\n\n\ndef f(x):\n    if x > 1:\n        return 1\n    elif x < 0:\n        return 2\n    return 3\n"
    )
    assert radon_metrics(code)["complexity"] == 3 and radon_metrics(code)["sloc"] == 7
    assert radon_metrics("def (:")["complexity"] is None
    q = quality_metrics([code, "def g():\n    return 1\n"])
    assert q["ruff_violations_per_sample"] == [1, 0] and q["ruff_by_rule"] == {"F401": 1}


def test_evalplus_average_is_the_mean_of_the_four_pass_at_1_scores():
    from ray_jobs.metrics.analysis import evalplus_average

    he = {f"HumanEval/{i}": (4, i % 5) for i in range(20)}
    he_plus = {t: (n, max(0, c - 1)) for t, (n, c) in he.items()}
    mbpp = {f"Mbpp/{i}": (4, (i * 3) % 5) for i in range(30)}
    mbpp_plus = {t: (n, c // 2) for t, (n, c) in mbpp.items()}
    result = evalplus_average({"HumanEval": he, "HumanEval+": he_plus, "MBPP": mbpp, "MBPP+": mbpp_plus})
    means = [sum(c / n for n, c in d.values()) / len(d) for d in (he, he_plus, mbpp, mbpp_plus)]
    assert result["scores"] == pytest.approx(dict(zip(["HumanEval", "HumanEval+", "MBPP", "MBPP+"], means)))
    assert result["average"] == pytest.approx(sum(means) / 4)
    assert result["ci_low"] < result["average"] < result["ci_high"]
