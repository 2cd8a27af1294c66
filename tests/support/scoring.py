"""Scoring a fixed set of shards through the real pool, for tests that know every shard up front."""

from __future__ import annotations

from ray_jobs.scoring.pool import ScoringPool, ScoringRun
from ray_jobs.scoring.shards import Shard


def score_shards(
    shards: list[Shard],
    results_dir,
    dataset_name: str,
    suites: tuple[str, ...],
    sandbox_config,
    oracles: dict | None,
    workers: int,
    config_id: str,
    progress: bool = True,
    **pool_options,
) -> ScoringRun:
    """Submit `shards`, close the pool, return its run (`pool_options`: ScoringPool's keywords)."""
    expected = sum(len(s.items) for s in shards)
    with ScoringPool(
        results_dir,
        dataset_name,
        suites,
        sandbox_config,
        oracles,
        workers,
        config_id,
        expected,
        progress,
        **pool_options,
    ) as pool:
        pool.submit(shards)
        return pool.close()
