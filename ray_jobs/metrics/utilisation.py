"""How busy each Serve replica was during a generation run, from the generations table alone.

Every sample of a request carries the request's replica, start time and latency, so the requests
are recovered by de-duplicating those. A replica's *busy share* is the part of the run's window in
which it had at least one request in flight; *mean in flight* is its requests' total latency over
the window (Little's law). A busy share well below 1, or a mean in flight far below
`generation.in_flight_per_replica`, means the replica waited on the pipeline, not the reverse.
"""

from __future__ import annotations


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def replica_utilisation(rows: list[dict]) -> dict:
    """`rows`: one run's generation rows (replica, request_started_at, latency_s, completion_tokens).
    Start times are the sending actors' clocks: on a multi-node cluster the window is as exact as
    the nodes' clocks agree."""
    requests: dict[tuple[str, float, float], list[dict]] = {}
    for r in rows:
        started = r.get("request_started_at")
        if r.get("replica") is None or started is None or r.get("latency_s") is None:
            continue  # errors (no replica answered) and files written before the column existed
        requests.setdefault((r["replica"], started, r["latency_s"]), []).append(r)
    if not requests:
        return {"window_s": 0.0, "replicas": {}}
    window_start = min(started for _, started, _ in requests)
    window = max(started + latency for _, started, latency in requests) - window_start
    per_replica: dict[str, dict] = {}
    for (replica, started, latency), samples in requests.items():
        entry = per_replica.setdefault(replica, {"requests": 0, "samples": 0, "completion_tokens": 0, "_spans": []})
        entry["requests"] += 1
        entry["samples"] += len(samples)
        entry["completion_tokens"] += sum(s.get("completion_tokens") or 0 for s in samples)
        entry["_spans"].append((started, started + latency))
    for entry in per_replica.values():
        spans = entry.pop("_spans")
        entry["busy_share"] = round(_union_length(spans) / window, 4) if window else 1.0
        entry["mean_in_flight"] = round(sum(end - start for start, end in spans) / window, 2) if window else None
        entry["tokens_per_s"] = round(entry["completion_tokens"] / window, 1) if window else None
    return {"window_s": round(window, 3), "replicas": dict(sorted(per_replica.items()))}
