"""No run hangs silently: a stage that makes no progress for `limit_s` fails the job, saying where.

Each stage of a run (start-up, serving, generation, scoring, report) beats while it moves on: a
progress bar's update, a poll of a loop that waits with a deadline of its own. A stage without a
beat for `limit_s` is stuck somewhere nobody bounded (a deadlock, a Ray call that never returns).
The watchdog thread then writes every thread's stack and the Ray tasks still running to the log,
says on the terminal which stage is stuck and where the main thread stands, and raises
`StageStuck` in the main thread through a signal (which also interrupts a blocking lock wait or
system call), so that the usual clean-up runs: the Serve app is deleted, Ray is shut down, and
every finished shard stays for a rerun to resume from. A main thread that does not unwind within
`GRACE_S` is past saving: the registered last-resort clean-ups run from the watchdog thread, and
the process exits with STUCK_EXIT_CODE.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

STUCK_EXIT_CODE = 3
GRACE_S = 120.0
_SIGNAL = signal.SIGUSR2
_RAY_TASKS_TIMEOUT_S = 20.0


class StageStuck(RuntimeError):
    """A stage made no progress for the watchdog's limit."""

    def __init__(self, stage: str, seconds: float, where: str):
        super().__init__(
            f"stage {stage!r} made no progress for {seconds:.0f} s (main thread at {where}); "
            "every thread's stack and the running Ray tasks are in the log, finished shards are kept"
        )
        self.stage, self.where = stage, where


_active: list[Watchdog] = []


def beat() -> None:
    """The current stage moved on (a no-op outside a watched run)."""
    for watchdog in _active:
        watchdog.beat()


def enter(stage: str) -> None:
    """The run's main work is now stage `stage` (a no-op outside a watched run)."""
    for watchdog in _active:
        watchdog.enter(stage)


class Watchdog:
    """Watches the main thread's stages. A context manager that watches only where it is entered
    on the main thread and no other watchdog is active (a sweep's configurations run in threads,
    under the sweep's watchdog); elsewhere it does nothing."""

    def __init__(self, limit_s: float, say: Callable[[str], None] = print):
        self.limit_s, self.say = limit_s, say
        self.stage_name = "start-up"
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._fired: StageStuck | None = None
        self._cleanups: list[Callable[[], object]] = []
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._previous_handler = None

    def enter(self, name: str) -> None:
        self.stage_name = name
        self.beat()

    def beat(self) -> None:
        self._last = time.monotonic()

    def on_abandon(self, cleanup: Callable[[], object]) -> None:
        """A clean-up to run from the watchdog thread if the main thread cannot unwind."""
        self._cleanups.append(cleanup)

    def __enter__(self) -> Watchdog:
        if _active or threading.current_thread() is not threading.main_thread():
            return self
        self._previous_handler = signal.signal(_SIGNAL, self._raise_in_main)
        _active.append(self)
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self not in _active:
            return
        self._stop.set()
        _active.remove(self)
        signal.signal(_SIGNAL, self._previous_handler)

    def _raise_in_main(self, signum, frame) -> None:
        if self._fired is not None:
            raise self._fired

    def _watch(self) -> None:
        poll = min(10.0, max(0.5, self.limit_s / 10))
        while not self._stop.wait(poll):
            idle = time.monotonic() - self._last
            if idle >= self.limit_s:
                self._fire(idle)
                return

    def _fire(self, idle: float) -> None:
        where = main_thread_position(self._main)
        self._fired = StageStuck(self.stage_name, idle, where)
        log.error("watchdog: %s", self._fired)
        dump_threads()
        log_running_ray_tasks()
        self.say(f"error: {self._fired}")
        signal.pthread_kill(self._main, _SIGNAL)
        if self._stop.wait(GRACE_S):
            return
        log.error("watchdog: the main thread did not unwind within %.0f s; last-resort clean-up, then exit", GRACE_S)
        dump_threads()
        for cleanup in self._cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        logging.shutdown()
        os._exit(STUCK_EXIT_CODE)


def main_thread_position(ident: int | None) -> str:
    """file:line (function) of the innermost frame of the main thread that is project code, else
    its innermost frame."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "an unknown place"
    frames = traceback.extract_stack(frame)
    ours = [f for f in frames if "ray_jobs" in f.filename or "serve_app" in f.filename]
    chosen = (ours or frames)[-1]
    inner = frames[-1]
    tail = "" if chosen is inner else f", inside {os.path.basename(inner.filename)}:{inner.lineno} ({inner.name})"
    return f"{chosen.filename}:{chosen.lineno} ({chosen.name}){tail}"


def dump_threads() -> None:
    """Every thread's stack, named, into the log (and fd 2, which is the run's log when quiet)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(f"--- thread {names.get(ident, '?')} ({ident})\n" + "".join(traceback.format_stack(frame)))
    log.error("watchdog: stacks of all %d threads:\n%s", len(parts), "\n".join(parts))
    with contextlib.suppress(Exception):
        faulthandler.dump_traceback(all_threads=True)  # C-level view too, straight to fd 2


def log_running_ray_tasks() -> None:
    """The Ray tasks and actor calls not finished yet, from Ray's state API (bounded: the API may
    be unavailable, e.g. without a dashboard, or as stuck as the job)."""
    found: list[str] = []

    def ask() -> None:
        try:
            from ray.util.state import list_tasks

            tasks = list_tasks(filters=[("state", "!=", "FINISHED")], limit=200, timeout=int(_RAY_TASKS_TIMEOUT_S))
            found.extend(f"{t.state} {t.name} (task {t.task_id}, node {t.node_id})" for t in tasks)
        except Exception as exc:
            found.append(f"unavailable: {type(exc).__name__}: {exc}")

    asker = threading.Thread(target=ask, name="watchdog-ray-tasks", daemon=True)
    asker.start()
    asker.join(_RAY_TASKS_TIMEOUT_S + 5)
    if asker.is_alive():
        found.append("unavailable: Ray's state API did not answer")
    log.error("watchdog: Ray tasks not finished:\n  %s", "\n  ".join(found) or "none")
