"""A pool of sandboxed scoring workers that takes shards as they come: `evaluate` submits each
generation shard's samples the moment the shard lands, so scoring runs on the CPUs beside the
replicas while they generate, and ends seconds after the last generation shard.

A thread of the driver drives the pool (Ray's API is thread-safe); the caller submits shards,
then closes the pool and gets a ScoringRun: the counts and every submitted shard's verdicts. Exactly-once and resume are the shards' (shards.py):
a shard whose results file exists is counted as resumed and not scored again.

A worker that answers no sample for `stuck_after_s` (default: the longest one job can take, the
sandbox's own answer deadline with reruns: client.longest_wait_s) is stuck: it is killed and
replaced, its running shard is retried (then marked crashed), and the one queued behind it goes
elsewhere.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import ray

from ray_jobs.config import SandboxConfig
from ray_jobs.console import Progress
from ray_jobs.sandbox.client import longest_wait_s
from ray_jobs.scoring.items import ScoreItem, longest_deadline
from ray_jobs.scoring.shards import SHARD_RETRIES, ScoringWorker, Shard, crashed_rows, shard_path
from ray_jobs.scoring.shared_verdicts import SharedVerdicts
from ray_jobs.storage import schemas
from ray_jobs.tasks.datasets import load_dataset

log = logging.getLogger(__name__)

POLL_S = 10.0  # how often the driver looks at busy workers' progress
PER_WORKER_DEPTH = 2  # one running, one queued: the actor never waits for the driver
_CLOSED = object()


@dataclass(frozen=True)
class ScoringRun:
    """What a scoring stage did, and its verdicts (schemas.RESULTS, resumed shards included)."""

    results: pa.Table
    layers: dict[str, str]  # sandbox isolation layer -> on, or why it is off
    shards_total: int
    shards_resumed: int  # finished by an earlier run, not scored again
    samples_scored: int  # by this run
    wall_s: float  # from the first shard submitted to the last verdict


@dataclass
class _Busy:
    """A started worker's calls in flight (the first one runs), and when it last answered a sample."""

    calls: dict = field(default_factory=dict)  # call ref -> shard
    answers: int = -1
    moved_at: float = field(default_factory=time.monotonic)


class ScoringPool:
    """Use as a context manager: `submit` shards, then `close()` for the ScoringRun. Leaving the block
    early (an error, Ctrl-C, the watchdog) stops the pool and kills its workers."""

    def __init__(
        self,
        results_dir: Path,
        dataset_name: str,
        suites: tuple[str, ...],
        sandbox_config: SandboxConfig,
        oracles: dict | None,
        workers: int,
        config_id: str,
        expected_samples: int,
        progress: bool = True,
        stuck_after_s: float | None = None,
        dedupe: bool = True,
        bar_line: int = 0,
        shared: SharedVerdicts | None = None,
        runtimes: dict[tuple[str, str], float | None] | None = None,
    ):
        """`expected_samples`: the progress bar's total; `bar_line`: its terminal line (1 below a
        generation bar that runs at the same time). With `dedupe`, a program that already has a
        verdict in `shared` (this pool's own by default; a sweep shares one between the pools of
        its configurations) is not run again. `runtimes`: canonical runtimes already known
        (canonical_runtimes.py), not measured again; the pool adds those its workers measure."""
        self.results_dir, self.dataset_name, self.suites = results_dir, dataset_name, suites
        self.sandbox_config, self.oracles, self.workers = sandbox_config, oracles, workers
        self.config_id, self.dedupe = config_id, dedupe
        spec = load_dataset(dataset_name).benchmark
        self.stuck_after = stuck_after_s or longest_wait_s(
            sandbox_config, longest_deadline(sandbox_config, suites, spec)
        )
        self.poll_s = min(POLL_S, self.stuck_after / 2)
        self._shards: list[Shard] = []  # every one submitted, in order
        self._shared = (shared or SharedVerdicts()) if dedupe else None
        self._given: dict[str, list[dict]] = {}  # shard key -> rows given from shared verdicts
        self._resumed, self._samples_scored, self._layers = 0, 0, {}
        # the stage starts with its first shard, not with the pool: in evaluate the pool waits
        # through the replicas' start-up, which is no part of scoring's time or rate
        self._bar_args = ("scoring", expected_samples, "sample", progress, bar_line)
        self._bar: Progress | None = None
        self._submitted: queue.Queue = queue.Queue()
        self._todo: deque[Shard] = deque()
        self._starting: dict = {}  # layers() call -> worker not started yet
        self._busy: dict = {}  # started worker -> _Busy
        self._failures: dict[str, int] = {}
        # canonical runtimes the workers measured, shared so that each is measured about once per
        # run rather than once per worker (MBPP+'s canonical solutions take 47 s on one worker)
        self.runtimes: dict[tuple[str, str], float | None] = {} if runtimes is None else runtimes
        self._oracles_ref = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._started: float | None = None
        self._thread = threading.Thread(target=self._run, name="scoring-pool", daemon=True)

    def __enter__(self) -> ScoringPool:
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self._stop.set()
            self._thread.join(timeout=30)
        if self._bar is not None:
            self._bar.close()

    def submit(self, shards: list[Shard]) -> None:
        self._submitted.put(shards)

    def close(self) -> ScoringRun:
        """No more shards: wait until every submitted one has its results, then read them."""
        self._submitted.put(_CLOSED)
        while self._thread.is_alive():
            self._thread.join(timeout=1.0)  # a short wait at a time: a signal (the watchdog) gets through
        if self._error is not None:
            raise self._error
        wall_s = time.perf_counter() - self._started if self._started is not None else 0.0
        results = schemas.read_tables([shard_path(self.results_dir, s) for s in self._shards], schemas.RESULTS)
        return ScoringRun(results, self._layers, len(self._shards), self._resumed, self._samples_scored, wall_s)

    # -- the pool's thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # raised again in close()
            self._error = exc
        finally:
            for worker in [*self._busy, *self._starting.values()]:
                ray.kill(worker)

    def _loop(self) -> None:
        closed = False
        while not self._stop.is_set():
            idle = not (self._todo or self._calls() or self._starting)
            closed = self._take_submissions(block=idle and not closed) or closed
            if closed and not self._todo and not self._calls():
                return
            self._grow()
            self._dispatch()
            waiting = [*self._calls(), *self._starting]
            if not waiting:
                continue
            done, _ = ray.wait(waiting, num_returns=1, timeout=self.poll_s)
            if done:
                self._collect(done[0])
            else:
                self._replace_stuck()

    def _take_submissions(self, block: bool) -> bool:
        """Move submitted shards to the queue (finished ones count as resumed); True once closed."""
        closed = False
        try:
            item = self._submitted.get(timeout=self.poll_s) if block else self._submitted.get_nowait()
            while True:
                if item is _CLOSED:
                    closed = True
                else:
                    self._queue(item)
                item = self._submitted.get_nowait()
        except queue.Empty:
            return closed

    def _queue(self, shards: list[Shard]) -> None:
        if self._bar is None:
            stage, total, unit, enabled, line = self._bar_args
            self._bar = Progress(stage, total, unit, enabled=enabled, position=line)
            self._started = time.perf_counter()
        for shard in shards:
            self._shards.append(shard)
            if shard_path(self.results_dir, shard).exists():
                self._resumed += 1
                self._bar.update(len(shard.items))
            else:
                self._samples_scored += len(shard.items)
                if self._to_run(shard):
                    self._todo.append(shard)
                else:  # every program has its verdict already: no worker needed
                    self._finish(shard, [])

    def _calls(self) -> dict:
        return {ref: worker for worker, state in self._busy.items() for ref in state.calls}

    def _grow(self) -> None:
        """Start workers as work arrives, up to `workers` and no more than there are shards for."""
        wanted = min(self.workers, len(self._todo) + len(self._calls()))
        while len(self._busy) + len(self._starting) < wanted:
            if self._oracles_ref is None and self.oracles is not None:
                self._oracles_ref = ray.put(self.oracles)
            worker = ScoringWorker.remote(self.dataset_name, self.sandbox_config.model_dump(), self._oracles_ref)
            self._starting[worker.layers.remote()] = worker

    def _dispatch(self) -> None:
        # Work goes only to workers that have started: on a busy cluster some may wait for a CPU the
        # whole run (replicas hold theirs), and shards queued on them would never come back.
        for worker, state in self._busy.items():
            while self._todo and len(state.calls) < PER_WORKER_DEPTH:
                shard = self._todo.popleft()
                items = self._to_run(shard)  # asked again: verdicts may have come since it was queued
                if not items:
                    self._finish(shard, [])
                    continue
                # named per shard: the dashboard's task list then says which results file is in work
                call = worker.score.options(name=f"score shard-{shard.key} ({len(items)} samples)")
                tasks = {item.task_id for item in items}
                known = {key: value for key, value in self.runtimes.items() if key[0] in tasks}
                state.calls[call.remote(items, self.suites, self.dedupe, known)] = shard

    def _to_run(self, shard: Shard) -> list[ScoreItem]:
        """The shard's items whose programs have no verdict yet; the others' rows wait for the
        shard's results."""
        if self._shared is None:
            return shard.items
        self._given[shard.key], todo = self._shared.reuse(shard.items, self.suites)
        return todo

    def _collect(self, ref) -> None:
        if ref in self._starting:
            self._busy[self._starting.pop(ref)] = _Busy()
            self._layers = self._layers or ray.get(ref)
            return
        state = self._busy[self._calls()[ref]]
        shard = state.calls.pop(ref)
        state.moved_at = time.monotonic()
        try:
            rows = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the scorer itself failed, not a sample
            self._failed(shard, exc)
            return
        self._finish(shard, rows)

    def _failed(self, shard: Shard, exc: BaseException) -> None:
        self._failures[shard.key] = self._failures.get(shard.key, 0) + 1
        if self._failures[shard.key] <= SHARD_RETRIES:
            log.warning("scoring shard %s failed (%s); retrying", shard.key, type(exc).__name__)
            self._todo.append(shard)
            return
        log.error(
            "scoring shard %s failed %d times; its samples are marked crashed: %s",
            shard.key,
            self._failures[shard.key],
            exc,
        )
        self._given.pop(shard.key, None)
        self._finish(shard, crashed_rows(shard, self.suites, exc))

    def _finish(self, shard: Shard, rows: list[dict]) -> None:
        """`rows`: those of the items that ran (or crashed); the shard's file holds them with the
        rows given from shared verdicts, in the shard's order."""
        for row in rows:
            row["config_id"] = self.config_id
            if row["reused_from"] is not None:  # an identical program of the same shard ran
                row["reused_config"] = self.config_id
            if row["passed"]:
                self.runtimes[(row["task_id"], row["suite"])] = row["canonical_runtime_s"]
        if self._shared is not None:
            self._shared.record(shard.items, rows)
        given = self._given.pop(shard.key, [])
        for row in given:
            row["config_id"] = self.config_id
        order = {(item.task_id, item.completion_id): i for i, item in enumerate(shard.items)}
        rows = sorted(
            rows + given, key=lambda r: (order[(r["task_id"], r["completion_id"])], self.suites.index(r["suite"]))
        )
        schemas.write_table(rows, schemas.RESULTS, shard_path(self.results_dir, shard))
        self._bar.update(len(shard.items))

    def _replace_stuck(self) -> None:
        stuck, moved = _poll_progress(self._busy, self.stuck_after, self.poll_s)
        if moved:
            self._bar.update(0)  # samples answered: the stage is alive, though no shard finished
        for worker in stuck:
            state = self._busy.pop(worker)
            log.error("a scoring worker answered no sample for %.0f s; replacing it", self.stuck_after)
            ray.kill(worker, no_restart=True)
            running, *queued = state.calls.values()
            self._todo.extendleft(queued)
            self._failed(running, TimeoutError(f"no sample answered for {self.stuck_after:.0f} s"))


def _poll_progress(busy: dict, stuck_after: float, wait_s: float) -> tuple[list, bool]:
    """(busy workers whose count of answered samples has not moved for `stuck_after` seconds,
    whether any count moved since the last poll). A worker that does not even say how many it
    answered has not moved."""
    working = [worker for worker, state in busy.items() if state.calls]
    if not working:
        return [], False
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
