from math import comb

import numpy as np
import pytest

from ray_jobs.metrics.passk import pass_at_k, per_task_counts


def test_unbiased_estimator_against_combinatorics():
    n, c = np.array([10, 10, 5]), np.array([3, 0, 5])
    got = pass_at_k(n, c, [1, 2, 5, 10])
    expected = {k: np.mean([1 - comb(ni - ci, k) / comb(ni, k) for ni, ci in zip(n, c)]) for k in (1, 2, 5)}
    assert got.keys() == {"pass@1", "pass@2", "pass@5"}  # k=10 > n for one task: omitted
    for k, v in expected.items():
        assert got[f"pass@{k}"] == pytest.approx(v, rel=1e-12)
    assert got["pass@1"] == pytest.approx((0.3 + 0 + 1) / 3)


def test_counts_keep_first_appearance_order():
    ids, n, c = per_task_counts([("b", True), ("a", False), ("b", False), ("a", True), ("a", True)])
    assert ids == ["b", "a"] and n.tolist() == [2, 3] and c.tolist() == [1, 2]
