"""The watchdog: a stage without progress fails the run, naming where the main thread stands."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ray_jobs import watchdog


def _blocked_forever_on(lock: threading.Lock) -> None:
    lock.acquire()  # a plain lock wait, as in a lock-order deadlock


def test_a_deadlocked_main_thread_is_interrupted_with_the_place_named(caplog):
    held = threading.Lock()
    held.acquire()  # held by nobody who will release it
    said: list[str] = []
    started = time.monotonic()
    with (
        caplog.at_level(logging.ERROR, logger="ray_jobs.watchdog"),
        pytest.raises(watchdog.StageStuck) as stuck,
        watchdog.Watchdog(1.0, said.append),
    ):
        watchdog.enter("serving")
        _blocked_forever_on(held)
    assert time.monotonic() - started < 5.0
    assert stuck.value.stage == "serving"
    assert "test_watchdog.py" in stuck.value.where and "_blocked_forever_on" in stuck.value.where
    assert said and "stage 'serving' made no progress" in said[0]
    logged = caplog.text
    assert "stacks of all" in logged and "--- thread MainThread" in logged and "_blocked_forever_on" in logged
    assert "Ray tasks not finished" in logged


def test_beats_keep_a_slow_stage_alive():
    with watchdog.Watchdog(1.0, print):
        watchdog.enter("generation")
        for _ in range(6):
            time.sleep(0.4)
            watchdog.beat()  # progress, as a progress bar's update gives it


def test_only_the_outermost_watchdog_on_the_main_thread_watches():
    outcome: list[object] = []

    def in_a_thread() -> None:
        with watchdog.Watchdog(0.5, print):  # a sweep's configuration: no watchdog of its own
            time.sleep(1.5)
        outcome.append("finished")

    with watchdog.Watchdog(60.0, print):
        worker = threading.Thread(target=in_a_thread)
        worker.start()
        worker.join()
    assert outcome == ["finished"]
