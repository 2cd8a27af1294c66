"""A memory, a process-count and a CPU cgroup for one fork server's samples, made by the (trusted) client.

RLIMIT_AS bounds a process's address space, not what it makes the kernel hold for it: memfd and
shared-memory pages, tmpfs files and inodes, page tables of a fork storm. A memory cgroup counts
all of it. Only samples join it (each, first thing after its fork, through a handle the sandbox
opened with the host identity): the server and its helpers stay outside, so running out of memory
there kills a sample and never the server (a red-team finding against a first version that put
the whole tree in one cgroup). One cgroup per server is enough, since a server runs one sample at a
time and waits for the last one's memory to be released before the next. cgroup v2 is used where
its controllers can be enabled, else the v1 hierarchies; where neither can be had (no privilege,
a read-only /sys/fs/cgroup) the layer is reported off and seccomp refuses memfd_create instead
(docs/threat_model.md).

The CPU cgroup does two things no per-process view can. Its usage counter (v1 `cpuacct.usage`, ns;
v2 `cpu.stat` `usage_usec`) is exact for every process that ever ran in it: 500 orphaned helpers
of 9 ms each showed up in no process's clock ticks and a sample ran twice its deadline (red team,
round 3). And its weight is fixed (the kernel's default, written out), so nothing inside can
change the samples' share against other sandboxes: `nice` only orders the group's own tasks, and
autogroups (a new one per `setsid()`, its weight settable through /proc/self/autogroup) apply
only to tasks of the root CPU group (kernel/sched/autogroup.c, task_wants_autogroup).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field

RELEASED_BYTES = 32 << 20  # what a finished sample may still hold while the next one starts
RELEASE_WAIT_S = 2.0  # how long the server waits for the kernel to free more (sockets in flight)
LAYERS = ("memory_cgroup", "pids_cgroup", "cpu_cgroup")


@dataclass
class SampleCgroups:
    dirs: list[tuple[str, str]] = field(default_factory=list)  # (layer, dir): every sample joins each
    memory_events: str | None = None  # where the kernel counts OOM kills ("oom_kill N")
    memory_stat: str | None = None  # memory.stat: usage by kind
    cpu_usage: str | None = None  # cpuacct.usage (v1, ns) or cpu.stat (v2, "usage_usec N")
    layers: dict[str, str] = field(default_factory=dict)  # why a cgroup could not be made


@dataclass
class Handles:
    """Opened with the host identity before the sandbox's own takes over; used from inside."""

    join: list[int] = field(default_factory=list)  # cgroup.procs of each: a sample writes "0"
    events: int | None = None
    stat: int | None = None
    cpu_usage: int | None = None

    def join_self(self) -> None:
        for fd in self.join:
            os.write(fd, b"0")

    def held_bytes(self) -> int:
        """Memory the kernel cannot reclaim on its own: anonymous and shared-memory pages. (All of
        it would count reclaimable caches too: a sample's 400,000 failed file lookups left
        76 MiB of them, and every later sample waited for nothing; red team.)"""
        if self.stat is None:
            return 0
        try:
            text = os.pread(self.stat, 16384, 0).decode()
        except OSError:
            return 0
        fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        names = ("total_rss", "total_shmem") if "total_rss" in fields else ("anon", "shmem")  # v1, else v2
        return sum(int(fields.get(name, 0)) for name in names)

    def wait_until_released(self) -> None:
        """A sample's memory can outlive it (files in flight in a unix socket stay charged until
        the kernel's socket garbage collector runs, which only closing a unix socket schedules;
        samples can no longer send descriptors, so this is the second line): the next sample must
        not start short of its limit."""
        if self.stat is None or self.held_bytes() < RELEASED_BYTES:
            return
        for end in socket.socketpair():  # closing one schedules the collector
            end.close()
        end = time.monotonic() + RELEASE_WAIT_S
        while self.held_bytes() >= RELEASED_BYTES and time.monotonic() < end:
            time.sleep(0.01)

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that ever ran in the samples' CPU cgroup; None without one."""
        if self.cpu_usage is None:
            return None
        try:
            text = os.pread(self.cpu_usage, 4096, 0)
        except OSError:
            return None
        if text.startswith(b"usage_usec "):  # v2: the first line of cpu.stat
            return int(text.split(None, 2)[1]) / 1e6
        return int(text) / 1e9

    def forget(self) -> None:
        """No cgroup to join or read (a trial sample could not join them)."""
        self.join, self.events, self.stat, self.cpu_usage = [], None, None, None


def open_handles(cgroups: SampleCgroups) -> Handles:
    handles = Handles()
    for _, path in dict.fromkeys(cgroups.dirs):
        handles.join.append(os.open(f"{path}/cgroup.procs", os.O_WRONLY))
    for name, path in (
        ("events", cgroups.memory_events),
        ("stat", cgroups.memory_stat),
        ("cpu_usage", cgroups.cpu_usage),
    ):
        if path:
            setattr(handles, name, os.open(path, os.O_RDONLY))
    return handles


def _read_int(fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 64, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, options) of every cgroup filesystem."""
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _dev, point, fstype, options, *_ = line.split()
            if fstype in ("cgroup", "cgroup2"):
                found.append((point, fstype, set(options.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    paths = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _v2_child(mounts, own, wanted: list[str]) -> tuple[str, list[str]]:
    """A new child of our v2 cgroup with those of `wanted` that v2 offers here enabled (a hybrid
    host can leave some to v1); the controllers it got."""
    point = next(p for p, fstype, _ in mounts if fstype == "cgroup2")
    parent = os.path.join(point, own[""].lstrip("/"))
    with open(os.path.join(parent, "cgroup.controllers")) as fh:
        available = fh.read().split()
    offered = [c for c in wanted if c in available]
    if not offered:
        raise OSError(f"cgroup v2 at {parent} offers no {', '.join(wanted)} controller")
    with open(os.path.join(parent, "cgroup.subtree_control")) as fh:
        enabled = fh.read().split()
    missing = " ".join(f"+{c}" for c in offered if c not in enabled)
    if missing:
        _write(os.path.join(parent, "cgroup.subtree_control"), missing)
    child = os.path.join(parent, f"ray-humaneval-sandbox-{uuid.uuid4().hex[:12]}")
    os.mkdir(child)
    return child, offered


def _v1_child(mounts, own, controller: str) -> tuple[str, set[str]]:
    """A new cgroup in the v1 hierarchy of `controller`; the controllers mounted with it."""
    point, options = next((p, opts) for p, fstype, opts in mounts if fstype == "cgroup" and controller in opts)
    child = os.path.join(point, own[controller].lstrip("/"), f"ray-humaneval-sandbox-{uuid.uuid4().hex[:12]}")
    os.mkdir(child)
    return child, options


# The weight written is the kernel's default: what matters is that it is fixed, and the same for
# every sandbox. v1 keeps the usage counter in cpuacct, which many hosts mount beside cpu, some
# apart (then the samples join both).
def _settings(memory_mb: int, max_pids: int) -> tuple[dict, dict]:
    """controller -> (required, optional) files and values, for v2 and for v1."""
    limit = str(memory_mb * 1024 * 1024)
    v2 = {
        "memory": ({"memory.max": limit}, {"memory.swap.max": "0"}),
        "pids": ({"pids.max": str(max_pids)}, {}),
        "cpu": ({"cpu.weight": "100"}, {}),
    }
    v1 = {
        "memory": ({"memory.limit_in_bytes": limit}, {"memory.memsw.limit_in_bytes": limit}),
        "pids": ({"pids.max": str(max_pids)}, {}),
        "cpu": ({"cpu.shares": "1024"}, {}),
    }
    return v2, v1


_LAYER = {"memory": "memory_cgroup", "pids": "pids_cgroup", "cpu": "cpu_cgroup"}


def create(memory_mb: int, max_pids: int) -> SampleCgroups:
    """Make the cgroups; every failure becomes an "off" layer with its reason, never an error."""
    result = SampleCgroups()
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        result.layers.update({layer: f"off: {exc}" for layer in LAYERS})
        return result
    v2, v1 = _settings(memory_mb, max_pids)
    left, v2_error = _create_v2(result, mounts, own, v2)
    for controller in left:
        _create_v1(result, mounts, own, controller, v1[controller], v2_error)
    return result


def _create_v2(result: SampleCgroups, mounts, own, settings: dict) -> tuple[list[str], BaseException | None]:
    """One v2 cgroup with every controller v2 offers here; the controllers left to v1."""
    try:
        child, offered = _v2_child(mounts, own, list(settings))
    except (OSError, StopIteration, KeyError) as exc:
        return list(settings), exc
    required = {name: value for c in offered for name, value in settings[c][0].items()}
    optional = {name: value for c in offered for name, value in settings[c][1].items()}
    if not _configure(child, required, optional):
        return list(settings), OSError(f"cannot set limits in {child}")
    result.dirs += [(_LAYER[c], child) for c in offered]
    if "memory" in offered:
        result.memory_events, result.memory_stat = f"{child}/memory.events", f"{child}/memory.stat"
    if "cpu" in offered:
        result.cpu_usage = f"{child}/cpu.stat"
    left = [c for c in settings if c not in offered]
    return left, OSError(f"cgroup v2 offers no {', '.join(left)} controller") if left else None


def _create_v1(
    result: SampleCgroups, mounts, own, controller: str, settings: tuple[dict, dict], v2_error: BaseException | None
) -> None:
    layer = _LAYER[controller]
    try:
        child, options = _v1_child(mounts, own, controller)
    except (OSError, StopIteration, KeyError) as exc:
        result.layers[layer] = f"off: cgroup v2: {_reason(v2_error)}; v1: {_reason(exc)}"
        return
    if not _configure(child, *settings):
        result.layers[layer] = f"off: cannot set limits in {child}"
        return
    made = [(layer, child)]
    if controller == "cpu" and "cpuacct" not in options:
        try:
            accounting, _ = _v1_child(mounts, own, "cpuacct")
        except (OSError, StopIteration, KeyError) as exc:
            os.rmdir(child)
            result.layers[layer] = f"off: no cpuacct hierarchy for the usage counter: {_reason(exc)}"
            return
        made.append((layer, accounting))
    result.dirs += made
    if controller == "memory":
        result.memory_events, result.memory_stat = f"{child}/memory.oom_control", f"{child}/memory.stat"
    if controller == "cpu":
        result.cpu_usage = f"{made[-1][1]}/cpuacct.usage"


def _configure(child: str, required: dict[str, str], optional: dict[str, str]) -> bool:
    """Write the limits; a cgroup that cannot take them is removed again."""
    try:
        for name, value in required.items():
            _write(f"{child}/{name}", value)
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(child)
        return False
    for name, value in optional.items():  # e.g. no swap accounting: nothing to escape into
        with contextlib.suppress(OSError):
            _write(f"{child}/{name}", value)
    return True


def _reason(exc: BaseException) -> str:
    return "no such hierarchy" if isinstance(exc, (StopIteration, KeyError)) else str(exc)


def oom_kills(events_fd: int | None) -> int:
    """The "oom_kill" counter of memory.events (v2) or memory.oom_control (v1)."""
    if events_fd is None:
        return 0
    try:
        text = os.pread(events_fd, 4096, 0).decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def remove(cgroups: SampleCgroups, deadline_s: float = 5.0) -> None:
    """Kill anything left in them, then remove the directories (the kernel refuses while a process
    or a zombie is still inside, so retry briefly)."""
    end = time.monotonic() + deadline_s
    for path in dict.fromkeys(path for _, path in cgroups.dirs):
        while os.path.isdir(path):
            with contextlib.suppress(OSError):
                with open(f"{path}/cgroup.procs") as fh:
                    for pid in fh.read().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
            try:
                os.rmdir(path)
            except OSError:
                if time.monotonic() > end:
                    break
                time.sleep(0.05)
