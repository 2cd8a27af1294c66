"""A scoring worker that answers no sample within its limit is replaced, its shard retried and then
marked crashed; every other shard is scored, and the stage finishes."""

from __future__ import annotations

import time

from ray_jobs.config import SandboxConfig
from ray_jobs.scoring.items import ScoreItem
from ray_jobs.scoring.shards import SHARD_RETRIES, make_shards, shard_path
from ray_jobs.storage import schemas
from tests.support.scoring import score_shards


def test_a_worker_silent_past_its_limit_is_replaced_and_the_stage_finishes(tmp_path, ray_local):
    slow = ScoreItem("HumanEval/2", 0, "    import time\n    time.sleep(6)\n    return number % 1.0\n")
    quick = [ScoreItem("HumanEval/2", i, "    return number % 1.0\n") for i in range(1, 9)]
    shards = make_shards([slow, *quick], 1, "liveness")
    started = time.monotonic()
    # the slow sample is honest (its 30 s limit is far off), but the worker is declared stuck after
    # 2 s without an answer: the path a worker wedged by anything at all would take
    stats = score_shards(
        shards,
        tmp_path,
        "humaneval",
        ("base",),
        SandboxConfig(timeout_s=30.0),
        None,
        2,
        "cfg",
        progress=False,
        stuck_after_s=2.0,
    )
    assert time.monotonic() - started < 90
    rows = schemas.read_tables([shard_path(tmp_path, s) for s in shards], schemas.RESULTS).to_pylist()
    by_sample = {r["completion_id"]: r for r in rows}
    assert len(rows) == 9 and stats.samples_scored == 9
    assert by_sample[0]["status"] == "crashed" and by_sample[0]["error_type"] == "ScoringTaskFailed"
    assert f"failed {SHARD_RETRIES + 1} times" in by_sample[0]["error_message"]
    assert "no sample answered" in by_sample[0]["error_message"]
    assert all(by_sample[i]["status"] == "passed" for i in range(1, 9))


def test_the_pool_ends_as_soon_as_its_last_shard_is_scored(tmp_path, ray_local):
    """No idle wait after the work: the pool once sat out a whole poll (10 s) after its last shard,
    which cost a 1,640-sample run three quarters of its throughput."""
    from ray_jobs.scoring.pool import POLL_S

    shards = make_shards(
        [ScoreItem("HumanEval/2", i, f"    return number % 1.0  # {i}\n") for i in range(4)], 2, "tail"
    )
    started = time.monotonic()
    stats = score_shards(shards, tmp_path, "humaneval", ("base",), SandboxConfig(), None, 1, "cfg", progress=False)
    assert stats.samples_scored == 4 and time.monotonic() - started < POLL_S - 1.0
