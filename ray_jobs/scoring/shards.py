"""Ray wiring of the scorer: sandboxed scoring actors over CPUs, shards written once each.

Exactly-once: a shard's results are written by the driver, atomically, under a key derived from
its content, and only when its (possibly retried) actor call returns. A lost node restarts the
actor elsewhere (max_restarts=-1) and Ray retries the call (max_task_retries=-1); the retried
call produces the same shard key, so nothing is counted twice and a rerun skips finished shards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import ray

from ray_jobs.config import SandboxConfig
from ray_jobs.scoring.items import ScoreItem, program_key, result_row
from ray_jobs.scoring.verdict import Verdict
from ray_jobs.storage.keys import content_key
from ray_jobs.tasks.datasets import task_sort_key

log = logging.getLogger(__name__)
SHARD_RETRIES = 2  # calls of a failing shard after the first, before its samples are marked crashed


@dataclass(frozen=True)
class Shard:
    key: str
    items: list[ScoreItem]


MIN_SHARDS = 8  # a small job still spreads over a node's scoring workers


def make_shards(items: list[ScoreItem], shard_size: int, salt: str, dedupe: bool = True) -> list[Shard]:
    """Deterministic shards: items sorted by task then completion, cut every `shard_size`, or
    smaller where that leaves fewer than MIN_SHARDS (a function of the items alone, not of the
    cluster, so a resumed run finds the same shards). With `dedupe`, identical programs of a task
    land in one shard, counted once towards its size: the worker runs them once (score_items)."""
    ordered = sorted(items, key=lambda i: (task_sort_key(i.task_id), i.completion_id))
    units: dict = {}  # each unit stays whole in one shard
    for item in ordered:
        units.setdefault(program_key(item) if dedupe else item, []).append(item)
    groups = list(units.values())
    shard_size = max(1, min(shard_size, -(-len(groups) // MIN_SHARDS)))
    shards = []
    for start in range(0, len(groups), shard_size):
        chunk = [item for group in groups[start : start + shard_size] for item in group]
        # a solution's kind is part of its key (completions keep the keys they always had)
        shards.append(
            Shard(
                content_key(
                    salt,
                    [
                        [i.task_id, i.completion_id, i.completion] + ([i.kind] if i.kind != "completion" else [])
                        for i in chunk
                    ],
                ),
                chunk,
            )
        )
    return shards


# `answers` has a thread of its own, so it is answered while `score` runs: the driver sees a
# worker's progress sample by sample and can tell a slow shard from a stuck worker. Calls of
# `score` still run one at a time (the default group's concurrency is 1): one sandbox, one caller.
@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1, concurrency_groups={"progress": 1})
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

    @ray.method(concurrency_group="progress")
    def answers(self) -> int:
        return self.sandbox.answers

    def score(
        self, items: list[ScoreItem], suites: tuple[str, ...], dedupe: bool, known_runtimes: dict | None = None
    ) -> list[dict]:
        """`known_runtimes`: canonical runtimes other workers measured, (task_id, suite) -> seconds
        (None: the canonical solution did not pass): not measured again here."""
        from ray_jobs.scoring.items import score_items

        self.canonical_runtimes.update(known_runtimes or {})
        return score_items(
            items, self.dataset.tasks, suites, self.sandbox, self.config, self.oracles, self.canonical_runtimes, dedupe
        )


def crashed_rows(shard: Shard, suites: tuple[str, ...], exc: BaseException) -> list[dict]:
    """Result rows for a shard whose scoring call failed every time: each sample `crashed`, so the
    job finishes and says so, rather than losing every other shard's results."""
    message = f"the scoring task failed {SHARD_RETRIES + 1} times: {type(exc).__name__}: {exc}"[:500]
    return [
        result_row(item, suite, Verdict("crashed", "ScoringTaskFailed", message), None)
        for item in shard.items
        for suite in suites
    ]


def shard_path(results_dir: Path, shard: Shard) -> Path:
    return results_dir / f"shard-{shard.key}.parquet"
