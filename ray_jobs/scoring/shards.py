"""Ray wiring of the scorer: sandboxed scoring actors over CPUs, shards written once each.

Exactly-once: a shard's results are written by the driver, atomically, under a key derived from
its content, and only when its (possibly retried) actor call returns. A lost node restarts the
actor elsewhere (max_restarts=-1) and Ray retries the call (max_task_retries=-1); the retried
call produces the same shard key, so nothing is counted twice and a rerun skips finished shards.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import ray

from ray_jobs.config import SandboxConfig
from ray_jobs.console import Progress
from ray_jobs.sandbox.verdict import Verdict
from ray_jobs.scoring.items import ScoreItem, result_row
from ray_jobs.storage import schemas
from ray_jobs.storage.keys import content_key
from ray_jobs.tasks.datasets import task_sort_key

log = logging.getLogger(__name__)
SHARD_RETRIES = 2  # calls of a failing shard after the first, before its samples are marked crashed


@dataclass(frozen=True)
class Shard:
    key: str
    items: list[ScoreItem]


MIN_SHARDS = 8  # a small job still spreads over a node's scoring workers


def make_shards(items: list[ScoreItem], shard_size: int, salt: str) -> list[Shard]:
    """Deterministic shards: items sorted by task then completion, cut every `shard_size`, or
    smaller where that leaves fewer than MIN_SHARDS (a function of the items alone, not of the
    cluster, so a resumed run finds the same shards)."""
    ordered = sorted(items, key=lambda i: (task_sort_key(i.task_id), i.completion_id))
    shard_size = max(1, min(shard_size, -(-len(ordered) // MIN_SHARDS)))
    shards = []
    for start in range(0, len(ordered), shard_size):
        chunk = ordered[start:start + shard_size]
        # a solution's kind is part of its key (completions keep the keys they always had)
        shards.append(Shard(content_key(salt, [[i.task_id, i.completion_id, i.completion]
                                               + ([i.kind] if i.kind != "completion" else []) for i in chunk]), chunk))
    return shards


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)
class ScoringWorker:
    """One warm sandbox fork server per CPU; shown as ScoringWorker in the Ray dashboard."""

    def __init__(self, dataset_name: str, sandbox_config: dict, oracles: dict | None):
        from ray_jobs.sandbox.client import Sandbox
        from ray_jobs.tasks.datasets import load_dataset

        self.dataset = load_dataset(dataset_name)
        self.config = SandboxConfig.model_validate(sandbox_config)
        self.oracles = oracles
        self.sandbox = Sandbox(self.config)
        self.sandbox.start()
        self.canonical_runtimes: dict = {}

    def layers(self) -> dict[str, str]:
        return self.sandbox.layers

    def score(self, items: list[ScoreItem], suites: tuple[str, ...]) -> list[dict]:
        from ray_jobs.scoring.items import score_items

        return score_items(items, self.dataset.tasks, suites, self.sandbox, self.config, self.oracles,
                           self.canonical_runtimes)


def crashed_rows(shard: Shard, suites: tuple[str, ...], exc: BaseException) -> list[dict]:
    """Result rows for a shard whose scoring call failed every time: each sample `crashed`, so the
    job finishes and says so, rather than losing every other shard's results."""
    message = f"the scoring task failed {SHARD_RETRIES + 1} times: {type(exc).__name__}: {exc}"[:500]
    return [result_row(item, suite, Verdict("crashed", "ScoringTaskFailed", message), None)
            for item in shard.items for suite in suites]


def shard_path(results_dir: Path, shard: Shard) -> Path:
    return results_dir / f"shard-{shard.key}.parquet"


def score_shards(shards: list[Shard], results_dir: Path, dataset_name: str, suites: tuple[str, ...],
                 sandbox_config: SandboxConfig, oracles: dict | None, workers: int, config_id: str,
                 progress: bool = True) -> dict:
    """Score the shards that have no results file yet. Returns the sandbox layers and timing."""
    todo = deque(s for s in shards if not shard_path(results_dir, s).exists())
    stats = {"shards_total": len(shards), "shards_skipped": len(shards) - len(todo), "layers": {},
             "scoring_wall_s": 0.0, "samples_scored": sum(len(s.items) for s in todo)}
    if not todo:
        return stats
    started = time.perf_counter()
    oracles_ref = ray.put(oracles) if oracles is not None else None
    pool = [
        ScoringWorker.remote(dataset_name, sandbox_config.model_dump(), oracles_ref)
        for _ in range(min(workers, len(todo)))
    ]
    # Work goes only to workers that have started: on a busy cluster some may wait for a CPU the
    # whole run (replicas hold theirs), and shards queued on them would never come back.
    starting = {worker.layers.remote(): worker for worker in pool}
    ready: list = []
    bar = Progress("scoring", sum(len(s.items) for s in todo), "sample", enabled=progress)
    in_flight: dict = {}
    failures: dict[str, int] = {}
    per_worker_depth = 2  # one running, one queued: the actor never waits for the driver
    try:
        while todo or in_flight:
            for worker in ready:
                while todo and sum(1 for w, _ in in_flight.values() if w is worker) < per_worker_depth:
                    shard = todo.popleft()
                    # named per shard: the dashboard's task list then says which results file is in work
                    call = worker.score.options(name=f"score shard-{shard.key} ({len(shard.items)} samples)")
                    in_flight[call.remote(shard.items, suites)] = (worker, shard)
            done, _ = ray.wait([*in_flight, *starting], num_returns=1)
            if done[0] in starting:
                ready.append(starting.pop(done[0]))
                stats["layers"] = stats["layers"] or ray.get(done[0])
                continue
            worker, shard = in_flight.pop(done[0])
            try:
                rows = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the scorer itself failed, not a sample
                failures[shard.key] = failures.get(shard.key, 0) + 1
                if failures[shard.key] <= SHARD_RETRIES:
                    log.warning("scoring shard %s failed (%s); retrying", shard.key, type(exc).__name__)
                    todo.append(shard)
                    continue
                log.error("scoring shard %s failed %d times; its samples are marked crashed: %s",
                          shard.key, failures[shard.key], exc)
                rows = crashed_rows(shard, suites, exc)
            for row in rows:
                row["config_id"] = config_id
            schemas.write_table(rows, schemas.RESULTS, shard_path(results_dir, shard))
            bar.update(len(shard.items))
    finally:
        bar.close()
        for worker in pool:
            ray.kill(worker)
    stats["scoring_wall_s"] = time.perf_counter() - started
    return stats
