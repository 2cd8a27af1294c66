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
from dataclasses import dataclass, field
from pathlib import Path

import ray

from ray_jobs.config import SandboxConfig
from ray_jobs.console import Progress
from ray_jobs.sandbox.client import longest_wait_s
from ray_jobs.sandbox.verdict import Verdict
from ray_jobs.scoring.items import ScoreItem, longest_deadline, program_key, result_row
from ray_jobs.storage import schemas
from ray_jobs.storage.keys import content_key
from ray_jobs.tasks.datasets import load_dataset, task_sort_key

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
        chunk = [item for group in groups[start:start + shard_size] for item in group]
        shards.append(Shard(content_key(salt, [[i.task_id, i.completion_id, i.completion] for i in chunk]), chunk))
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

    def score(self, items: list[ScoreItem], suites: tuple[str, ...], dedupe: bool) -> list[dict]:
        from ray_jobs.scoring.items import score_items

        return score_items(items, self.dataset.tasks, suites, self.sandbox, self.config, self.oracles,
                           self.canonical_runtimes, dedupe)


def crashed_rows(shard: Shard, suites: tuple[str, ...], exc: BaseException) -> list[dict]:
    """Result rows for a shard whose scoring call failed every time: each sample `crashed`, so the
    job finishes and says so, rather than losing every other shard's results."""
    message = f"the scoring task failed {SHARD_RETRIES + 1} times: {type(exc).__name__}: {exc}"[:500]
    return [result_row(item, suite, Verdict("crashed", "ScoringTaskFailed", message), None)
            for item in shard.items for suite in suites]


def shard_path(results_dir: Path, shard: Shard) -> Path:
    return results_dir / f"shard-{shard.key}.parquet"


POLL_S = 10.0  # how often the driver looks at busy workers' progress


@dataclass
class _Busy:
    """A worker's calls in flight (the first one runs), and when it last answered a sample."""

    calls: dict = field(default_factory=dict)  # call ref -> shard
    answers: int = -1
    moved_at: float = field(default_factory=time.monotonic)


def score_shards(shards: list[Shard], results_dir: Path, dataset_name: str, suites: tuple[str, ...],
                 sandbox_config: SandboxConfig, oracles: dict | None, workers: int, config_id: str,
                 progress: bool = True, stuck_after_s: float | None = None, dedupe: bool = True) -> dict:
    """Score the shards that have no results file yet. Returns the sandbox layers and timing.

    A worker that answers no sample for `stuck_after_s` (default: the longest one job can take,
    the sandbox's own answer deadline with reruns: client.longest_wait_s) is stuck: it is killed
    and replaced, its running shard is retried (then marked crashed), and the one queued behind it
    goes elsewhere."""
    todo = deque(s for s in shards if not shard_path(results_dir, s).exists())
    stats = {"shards_total": len(shards), "shards_skipped": len(shards) - len(todo), "layers": {},
             "scoring_wall_s": 0.0, "samples_scored": sum(len(s.items) for s in todo)}
    if not todo:
        return stats
    started = time.perf_counter()
    family = load_dataset(dataset_name).family
    stuck_after = stuck_after_s or longest_wait_s(sandbox_config, longest_deadline(sandbox_config, suites, family))
    poll_s = min(POLL_S, stuck_after / 2)
    oracles_ref = ray.put(oracles) if oracles is not None else None

    def new_worker():
        return ScoringWorker.remote(dataset_name, sandbox_config.model_dump(), oracles_ref)

    # Work goes only to workers that have started: on a busy cluster some may wait for a CPU the
    # whole run (replicas hold theirs), and shards queued on them would never come back.
    starting = {worker.layers.remote(): worker for worker in (new_worker() for _ in range(min(workers, len(todo))))}
    busy: dict = {}  # worker -> _Busy, for every started worker
    bar = Progress("scoring", sum(len(s.items) for s in todo), "sample", enabled=progress)
    failures: dict[str, int] = {}
    per_worker_depth = 2  # one running, one queued: the actor never waits for the driver

    def failed(shard: Shard, exc: BaseException) -> None:
        failures[shard.key] = failures.get(shard.key, 0) + 1
        if failures[shard.key] <= SHARD_RETRIES:
            log.warning("scoring shard %s failed (%s); retrying", shard.key, type(exc).__name__)
            todo.append(shard)
            return
        log.error("scoring shard %s failed %d times; its samples are marked crashed: %s", shard.key,
                  failures[shard.key], exc)
        finish(shard, crashed_rows(shard, suites, exc))

    def finish(shard: Shard, rows: list[dict]) -> None:
        for row in rows:
            row["config_id"] = config_id
        schemas.write_table(rows, schemas.RESULTS, shard_path(results_dir, shard))
        bar.update(len(shard.items))

    try:
        while todo or any(b.calls for b in busy.values()):
            for worker, state in busy.items():
                while todo and len(state.calls) < per_worker_depth:
                    shard = todo.popleft()
                    # named per shard: the dashboard's task list then says which results file is in work
                    call = worker.score.options(name=f"score shard-{shard.key} ({len(shard.items)} samples)")
                    state.calls[call.remote(shard.items, suites, dedupe)] = shard
            calls = {ref: worker for worker, state in busy.items() for ref in state.calls}
            done, _ = ray.wait([*calls, *starting], num_returns=1, timeout=poll_s)
            if not done:
                stuck, moved = _poll_progress(busy, stuck_after, poll_s)
                if moved:
                    bar.update(0)  # samples answered: the stage is alive, though no shard finished
                for worker in stuck:
                    state = busy.pop(worker)
                    log.error("a scoring worker answered no sample for %.0f s; replacing it", stuck_after)
                    ray.kill(worker, no_restart=True)
                    running, *queued = state.calls.values()
                    todo.extendleft(queued)
                    failed(running, TimeoutError(f"no sample answered for {stuck_after:.0f} s"))
                    replacement = new_worker()
                    starting[replacement.layers.remote()] = replacement
                continue
            if done[0] in starting:
                worker = starting.pop(done[0])
                busy[worker] = _Busy()
                stats["layers"] = stats["layers"] or ray.get(done[0])
                continue
            state = busy[calls[done[0]]]
            shard = state.calls.pop(done[0])
            state.moved_at = time.monotonic()
            try:
                rows = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the scorer itself failed, not a sample
                failed(shard, exc)
                continue
            finish(shard, rows)
    finally:
        bar.close()
        for worker in [*busy, *starting.values()]:
            ray.kill(worker)
    stats["scoring_wall_s"] = time.perf_counter() - started
    return stats


def _poll_progress(busy: dict, stuck_after: float, wait_s: float) -> tuple[list, bool]:
    """(busy workers whose count of answered samples has not moved for `stuck_after` seconds,
    whether any count moved since the last poll). A worker that does not even say how many it
    answered has not moved."""
    working = [worker for worker, state in busy.items() if state.calls]
    asked = {worker.answers.remote(): worker for worker in working}
    ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=wait_s)
    now, moved = time.monotonic(), False
    for ref in ready:
        state = busy[asked[ref]]
        try:
            answers = ray.get(ref)
        except ray.exceptions.RayError:
            continue
        if answers != state.answers:
            moved = moved or state.answers >= 0
            state.answers, state.moved_at = answers, now
    return [worker for worker in working if now - busy[worker].moved_at > stuck_after], moved
