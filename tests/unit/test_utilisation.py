"""Replica utilisation from generation rows: hand-computed windows, overlaps and exclusions."""

from __future__ import annotations

from ray_jobs.metrics.utilisation import replica_utilisation


def request(replica, started, latency, samples=2, tokens=10):
    return [
        {"replica": replica, "request_started_at": started, "latency_s": latency, "completion_tokens": tokens}
        for _ in range(samples)
    ]


def test_busy_share_counts_overlapping_requests_once():
    rows = request("a", 100.0, 4.0) + request("a", 102.0, 4.0) + request("b", 100.0, 2.0) + request("b", 108.0, 2.0)
    out = replica_utilisation(rows)
    assert out["window_s"] == 10.0  # 100 .. 110
    a, b = out["replicas"]["a"], out["replicas"]["b"]
    assert (a["requests"], a["samples"], a["completion_tokens"]) == (2, 4, 40)
    assert a["busy_share"] == 0.6  # 100..106, the overlap counted once
    assert a["mean_in_flight"] == 0.8  # 8 s of requests over a 10 s window
    assert b["busy_share"] == 0.4 and b["mean_in_flight"] == 0.4
    assert a["tokens_per_s"] == 4.0


def test_errors_and_old_files_are_left_out():
    rows = (
        request(None, 100.0, 1.0)  # an error: no replica answered
        + [{"replica": "a", "request_started_at": None, "latency_s": 1.0, "completion_tokens": 3}]  # a v1 file
        + request("a", 100.0, 5.0)
    )
    out = replica_utilisation(rows)
    assert out["window_s"] == 5.0
    assert out["replicas"] == {
        "a": {
            "requests": 1,
            "samples": 2,
            "completion_tokens": 20,
            "busy_share": 1.0,
            "mean_in_flight": 1.0,
            "tokens_per_s": 4.0,
        }
    }
    assert replica_utilisation([]) == {"window_s": 0.0, "replicas": {}}
