"""Kernel isolation primitives for the fork server, each one reported as applied or degraded.

Every layer is attempted once, when the fork server starts, and inherited by every sample it
forks. A layer the kernel refuses is recorded with the reason so the caller can warn loudly and
write it into summary.json; nothing is skipped silently.

Order matters (see docs/threat_model.md):
  1. child subreaper, so escaped grandchildren come back to the server;
  2. unshare user+mount+net+pid namespaces, then fork: the child is PID 1 of the new pid ns;
  3. in PID 1: private mounts, fresh /proc, pid limit, hide secret/data paths, read-only /,
     a tmpfs /tmp;
  4. a nested user namespace, which locks those mounts against the samples;
  5. seccomp socket filter and no_new_privs; the server itself becomes non-dumpable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import socket
from dataclasses import dataclass, field

try:  # loaded before the namespaces: the library lookup runs ldconfig, which the frozen view breaks
    import pyseccomp as seccomp

    _SECCOMP_ERROR = None
except Exception as exc:  # libseccomp missing: reported as a degraded layer, not a crash
    seccomp, _SECCOMP_ERROR = None, f"{type(exc).__name__}: {exc}"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

SYS_MOUNT_SETATTR = 442  # same number on every architecture (unified syscall table)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def set_mount_attr(path: str, attr_set: int, attr_clr: int, recursive: bool) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    res = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(res, f"mount_setattr({path})")


def make_tree_read_only(path: str = "/") -> None:
    set_mount_attr(path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, recursive=True)


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _map_ids(uid: int, gid: int, inner: int = 0) -> None:
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inner} {uid} 1")
    _write("/proc/self/gid_map", f"{inner} {gid} 1")


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


def enter_namespaces(report: LayerReport, want: bool) -> bool:
    """Unshare user+mount+net+pid. Returns True when a pid namespace was created, in which case the
    caller must fork: only the child lives inside it."""
    if not want:
        for name in ("user_namespace", "network_namespace", "pid_namespace", "mount_namespace"):
            report.off(name, "disabled by configuration")
        return False
    uid, gid = os.getuid(), os.getgid()
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)
        _map_ids(uid, gid)
        for name in ("user_namespace", "network_namespace", "pid_namespace", "mount_namespace"):
            report.on(name)
        return True
    except OSError as exc:
        report.off("user_namespace", exc)
    try:  # root without user namespaces can still get the others
        unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)
        for name in ("network_namespace", "pid_namespace", "mount_namespace"):
            report.on(name)
        return True
    except OSError as exc:
        for name in ("network_namespace", "pid_namespace", "mount_namespace"):
            report.off(name, exc)
        return False


def private_mounts_and_proc(report: LayerReport) -> None:
    """Inside the new mount namespace: stop propagation to the host, and mount a /proc that only
    shows this pid namespace (so samples cannot read the scorer's memory through /proc/PID/mem)."""
    if not report.is_on("mount_namespace"):
        report.off("fresh_proc", "no mount namespace")
        return
    try:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        report.on("fresh_proc")
    except OSError as exc:  # Docker-like containers refuse it; host pids then stay visible
        report.off("fresh_proc", exc)


def freeze_filesystem(report: LayerReport, hidden_paths: list[str], scratch_mb: int,
                      keep_visible: list[str]) -> None:
    """Read-only view of everything, data and secrets hidden, and an empty private tmpfs at /tmp
    that is the only writable place. `keep_visible` (the interpreter and import paths) stays
    visible even when it lies under /tmp."""
    if not report.is_on("mount_namespace"):
        for name in ("hidden_paths", "read_only_root", "private_tmp"):
            report.off(name, "no mount namespace")
        return
    failed = []
    for path in hidden_paths:
        if not os.path.lexists(path):
            continue
        try:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=000")
            else:
                mount("/dev/null", path, None, MS_BIND)
        except OSError as exc:
            failed.append(f"{path} ({exc.strerror})")
    if failed:
        report.off("hidden_paths", "could not hide " + ", ".join(failed))
    else:
        report.on("hidden_paths")
    try:
        make_tree_read_only("/")
        # /proc stays writable: the nested user namespace (lock_mounts) writes its id maps there.
        set_mount_attr("/proc", 0, MOUNT_ATTR_RDONLY, recursive=False)
        report.on("read_only_root")
    except OSError as exc:
        report.off("read_only_root", exc)
    # The interpreter, its site-packages or the project may live under /tmp (a CI clone does):
    # keep a handle on the old /tmp to bind them back, read-only, over the new empty one.
    under_tmp = _outermost([p for p in keep_visible if os.path.realpath(p).startswith("/tmp/")])
    old_tmp = os.open("/tmp", os.O_PATH) if under_tmp else None
    try:
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_mb}m,mode=1777")
        for path in under_tmp:
            relative = os.path.relpath(os.path.realpath(path), "/tmp")
            os.makedirs(path, exist_ok=True)
            # recursive: the hiding mounts inside (the dataset dir) come along
            mount(f"/proc/self/fd/{old_tmp}/{relative}", path, None, MS_BIND | MS_REC)
            set_mount_attr(path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, recursive=True)
        report.on("private_tmp")
    except OSError as exc:
        report.off("private_tmp", exc)
    finally:
        if old_tmp is not None:
            os.close(old_tmp)


def _outermost(paths: list[str]) -> list[str]:
    """Existing directories among `paths`, without those inside another one of them."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    return [p for i, p in enumerate(real) if not any(p.startswith(q.rstrip("/") + "/") for q in real[:i])]


def lock_mounts(report: LayerReport) -> None:
    """A nested user namespace no longer owns the mount namespace, so neither the server nor a
    sample can unmount the hiding tmpfs or remount / writable, even with CAP_SYS_ADMIN in it."""
    if not report.is_on("user_namespace"):
        report.off("mounts_locked", "no user namespace")
        return
    try:
        unshare(CLONE_NEWUSER)
        _map_ids(0, 0)
        report.on("mounts_locked")
    except OSError as exc:
        report.off("mounts_locked", exc)


def limit_pids(report: LayerReport, max_pids: int) -> None:
    """Per-pid-namespace pid_max (Linux 6.14+) bounds fork storms; RLIMIT_NPROC does not apply to
    root, which is what the samples are mapped to when the scorer runs as root."""
    if not report.is_on("pid_namespace") or not report.is_on("fresh_proc"):
        report.off("pid_limit", "needs a pid namespace with its own /proc")
        return
    try:
        _write("/proc/sys/kernel/pid_max", str(max_pids))
        report.on("pid_limit")
    except OSError as exc:
        report.off("pid_limit", exc)


def install_seccomp(report: LayerReport) -> None:
    """Deny every socket family but AF_UNIX, and ptrace. The network namespace already has no
    route out; this also stops use of the (down) loopback and raw/netlink sockets."""
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        report.on("no_new_privs")
    except OSError as exc:
        report.off("no_new_privs", exc)
    if seccomp is None:
        report.off("seccomp", _SECCOMP_ERROR)
        return
    try:
        filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        filt.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
        filt.add_rule(seccomp.ERRNO(errno.EPERM), "ptrace")
        filt.load()
        report.on("seccomp")
    except Exception as exc:  # libseccomp missing or kernel without seccomp filters
        report.off("seccomp", f"{type(exc).__name__}: {exc}")


def apply_sample_limits(memory_mb: int, cpu_seconds: int, file_mb: int, max_open_files: int) -> None:
    """Per-sample rlimits, set in the forked sample just before its code runs."""
    limits = [
        (resource.RLIMIT_AS, memory_mb * 1024 * 1024),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_FSIZE, file_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, max_open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
