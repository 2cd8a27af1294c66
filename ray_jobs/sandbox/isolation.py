"""Kernel primitives of the sandbox, thin ctypes wrappers with the reasons they exist.

Which layer uses which primitive, and in what order, is decided by bootstrap.py (the fork
server's start-up), server.py (its loop) and child.py (one sample); rootfs.py builds the
allow-listed filesystem view and seccomp.py the system-call filter. Every layer is reported as
applied ("on") or degraded ("off: <reason>").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import resource
from dataclasses import dataclass, field

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS and NO_CAP_AMBIENT_RAISE locked in their safe state: uid 0
# (the sandbox's own root) never regains a capability, not even through execve.
SECUREBITS_LOCKED_DOWN = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4

_SYSCALLS = {  # numbers glibc has no wrapper for; mount_setattr is 442 on every architecture
    "x86_64": {"pivot_root": 155, "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442},
}


def _syscall_number(name: str) -> int:
    try:
        return _SYSCALLS[platform.machine()][name]
    except KeyError:
        raise OSError(f"{name}: unsupported architecture {platform.machine()}") from None


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAPABILITY_VERSION_3 = 0x20080522


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def prctl(option: int, arg: int, arg2: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg2), 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)), f"mount {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(_enc(target), MNT_DETACH), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_syscall_number("pivot_root"), _enc(new_root), _enc(put_old)), "pivot_root")


def set_mount_attr(path: str, attr_set: int, attr_clr: int, recursive: bool) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    res = _libc.syscall(
        _syscall_number("mount_setattr"),
        AT_FDCWD,
        _enc(path),
        AT_RECURSIVE if recursive else 0,
        ctypes.byref(attr),
        ctypes.sizeof(attr),
    )
    _check(res, f"mount_setattr({path})")


def sethostname(name: str) -> None:
    _check(_libc.sethostname(name.encode(), len(name)), "sethostname")


def write_file(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def map_ids(pid: int | str, mapping: dict[int, int]) -> None:
    """Map ids (inside -> outside, uid and gid alike) of a new user namespace; `pid` "self" for the
    caller's own (then only its own id may be mapped)."""
    lines = "".join(f"{inside} {outside} 1\n" for inside, outside in mapping.items())
    write_file(f"/proc/{pid}/setgroups", "deny")
    write_file(f"/proc/{pid}/uid_map", lines)
    write_file(f"/proc/{pid}/gid_map", lines)


def load_seccomp_program(program: bytes) -> None:
    """Install a compiled BPF filter (from seccomp.compile_policy)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def drop_bounding_set() -> None:
    """No execve can ever grant a capability again. Once, in the server: each drop commits new
    credentials, 64 of them cost a sample 0.2 ms."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL past the kernel's last capability (or no CAP_SETPCAP: nothing to drop)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def switch_identity(uid: int) -> None:
    """All ids to `uid` (also the gid); leaving uid 0 clears every capability. No ctypes here:
    the first foreign call in a fresh fork costs ~90 µs of copy-on-write faults."""
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def clear_capabilities() -> None:
    """For a namespace root that has no other id to switch to (an unprivileged caller's user
    namespace maps only its own uid): no capability left, none regained through uid 0 or execve."""
    prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED_DOWN)
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _clamped(which: int, value: int) -> tuple[int, int]:
    _soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    return value, value


SIGNALS_PENDING = 256  # queued signals and POSIX timers: a per-user budget the kernel shares out


def limit_server(file_mb: int) -> None:
    """The rlimits every sample shares, set once on the server (which stays well inside them):
    samples inherit them with the fork."""
    resource.setrlimit(resource.RLIMIT_FSIZE, _clamped(resource.RLIMIT_FSIZE, file_mb * 1024 * 1024))
    resource.setrlimit(resource.RLIMIT_CORE, _clamped(resource.RLIMIT_CORE, 0))
    resource.setrlimit(resource.RLIMIT_SIGPENDING, _clamped(resource.RLIMIT_SIGPENDING, SIGNALS_PENDING))


class SampleLimits:
    """The rlimits a sample sets on itself just before its code runs, worked out once in the
    server (the address space and open files there too: the server's own may already be past a
    small limit). EvalPlus also sets RLIMIT_STACK and RLIMIT_DATA to its memory limit: deep
    recursion crashes where it would there."""

    def __init__(self, memory_mb: int, max_open_files: int):
        memory = memory_mb * 1024 * 1024
        self.base = [
            (resource.RLIMIT_AS, _clamped(resource.RLIMIT_AS, memory)),
            (resource.RLIMIT_NOFILE, _clamped(resource.RLIMIT_NOFILE, max_open_files)),
        ]
        self.evalplus = self.base + [
            (resource.RLIMIT_STACK, _clamped(resource.RLIMIT_STACK, memory)),
            (resource.RLIMIT_DATA, _clamped(resource.RLIMIT_DATA, memory)),
        ]
        self.cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]

    def apply(self, cpu_seconds: int, evalplus: bool) -> None:
        for which, pair in self.evalplus if evalplus else self.base:
            resource.setrlimit(which, pair)
        if self.cpu_hard != resource.RLIM_INFINITY:
            cpu_seconds = min(cpu_seconds, self.cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


@dataclass
class LayerReport:
    """layer name -> "on" or "off: <reason>"; kept in order of application."""

    layers: dict[str, str] = field(default_factory=dict)

    def on(self, name: str) -> None:
        self.layers[name] = "on"

    def off(self, name: str, reason: object) -> None:
        self.layers[name] = f"off: {reason}"

    def is_on(self, name: str) -> bool:
        return self.layers.get(name) == "on"
