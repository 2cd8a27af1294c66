"""Start-up cannot deadlock on logging: importing vLLM (through Ray Serve LLM) reconfigures
logging with dictConfig, which holds logging's module lock while it takes each handler's lock.
Ray Data's SessionFileHandler, inside emit (its own lock held), creates a file handler, which
needs the module lock. The main job once hung forever so; the warm-up thread of generation is the
one that logs. This forces the bad interleaving: a stand-in for that emit holds a handler's lock
until the module lock is taken elsewhere, then asks for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import logging, os, sys, threading, time
from ray_jobs.generation import driver

handler = logging.StreamHandler(sys.stderr)
logging.getLogger("ray.data").addHandler(handler)
holding, imported = threading.Event(), threading.Event()


def module_lock_taken_elsewhere():
    if logging._lock.acquire(blocking=False):
        logging._lock.release()
        return False
    return True


def emit_as_ray_data_does():
    with handler.lock:  # inside emit
        holding.set()
        while not imported.is_set() and not module_lock_taken_elsewhere():
            time.sleep(0.0005)
        logging.FileHandler(os.devnull).close()  # needs logging's module lock


driver._warm_up = emit_as_ray_data_does  # the warm-up's logging, forced to the worst moment
thread = driver.warm_up_in_background()
holding.wait(60)
import ray.serve.llm  # what serving() imports next
imported.set()
thread.join()
print("STARTED", flush=True)
"""


def test_the_serving_stack_import_cannot_deadlock_with_a_logging_thread():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "STARTED" in proc.stdout, proc.stderr[-2000:]
