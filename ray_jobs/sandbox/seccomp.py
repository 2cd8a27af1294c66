"""The system-call policy of the fork server and its samples, installed once in the server
after setup: every sample inherits it (loading a filter costs a fresh fork ~110 µs).

Default allow, with denials for the kernel surface a HumanEval-style program never needs and an
attacker uses to reach past the namespaces: io_uring (it creates sockets past a socket() rule),
bpf, userfaultfd, perf events, keyrings, ptrace and cross-process memory access, namespace calls
(unshare, setns, clone into a namespace) and the new mount API, pivot_root, kexec, reboot and
module loading, SysV IPC and POSIX message queues (they outlive the process), splice and its
kin, named sockets and descriptor passing, inotify, and sockets of any family but AF_UNIX. Calls of other architectures (int 0x80, x32) are killed by libseccomp's
architecture check.

Round 3 of the red team added the calls that bend time or reach the host's shared state: a sample
may not make itself dumpable again (that opened /proc/self/autogroup to it), nor lower its own
priority (setpriority, the sched_set* family); the CPU cgroup makes both harmless anyway, this is
the second line. Kernel AIO draws on a host-wide budget; sync/syncfs flush the host's disks;
fadvise(DONTNEED) on the read-only binds evicts the host's page cache and preadv2(RWF_NOWAIT)
probes it (a side channel on what the host reads). mount(2) and umount2(2) stay allowed: the server swaps a used /tmp for a
fresh tmpfs with them. A sample cannot use them: it holds no capability, and the only way to one,
a new user namespace, is denied here.
"""

from __future__ import annotations

import errno
import os
import socket

try:  # loaded at import time: the library lookup runs ldconfig, which the sandbox root lacks
    import pyseccomp as _seccomp

    LOAD_ERROR = None
except Exception as exc:  # libseccomp missing: a degraded layer, not a crash
    _seccomp, LOAD_ERROR = None, f"{type(exc).__name__}: {exc}"

from ray_jobs.sandbox.isolation import NAMESPACE_FLAGS

DENIED = (
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "fanotify_init",
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "mount_setattr",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "shmget",
    "msgget",
    "semget",
    "mq_open",
    # splice from a socket into a pipe waits for data holding the pipe's lock, which wedged the
    # server's read of a sample's output (red team); sendfile and tee/vmsplice share the machinery
    "splice",
    "tee",
    "vmsplice",
    "sendfile",
    # no named sockets: a bound socket passed around in flight outlives its sample, a rendezvous
    # for the next one (socketpair, which asyncio uses, needs neither); and no descriptors sent
    # over sockets: one left in flight outlives its sample, with its memory or its file lock
    "bind",
    "listen",
    "sendmsg",
    "sendmmsg",
    # inotify instances are a per-user budget, shared with whoever else runs as that uid
    "inotify_init",
    "inotify_init1",
    "fanotify_init",
    # lowering one's own priority made the clock credit the wait it caused (red team, round 3)
    "setpriority",
    "sched_setattr",
    "sched_setscheduler",
    "sched_setparam",
    "sync",
    "syncfs",
)
# Kernel AIO: "not built into this kernel", which libaio users handle (the io_setup budget, aio-max-nr, is host-wide)
UNIMPLEMENTED = ("io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents")

PR_SET_DUMPABLE = 4
POSIX_FADV_DONTNEED = 4
RWF_NOWAIT = 8
_INT = 0xFFFFFFFF  # an `int` argument: the kernel ignores the upper half of the register, so must the filter


def compile_policy(deny_memfd: bool) -> bytes:
    """The BPF program (raw sock_filter array). `deny_memfd`: where no memory cgroup counts
    memfd pages, memfd_create is refused too (its memory escapes RLIMIT_AS)."""
    if _seccomp is None:
        raise OSError(LOAD_ERROR)
    policy = _seccomp.SyscallFilter(defaction=_seccomp.ALLOW)
    for name in DENIED + (("memfd_create",) if deny_memfd else ()):
        _deny(policy, name, errno.EPERM)
    for name in UNIMPLEMENTED:
        _deny(policy, name, errno.ENOSYS)
    _deny_arguments(policy)
    policy.add_rule(_seccomp.ERRNO(errno.EACCES), "socket", _seccomp.Arg(0, _seccomp.NE, socket.AF_UNIX))
    for flag in NAMESPACE_FLAGS:  # clone() into a new namespace is unshare() by another name
        policy.add_rule(_seccomp.ERRNO(errno.EPERM), "clone", _seccomp.Arg(0, _seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes glibc use clone()
    _deny(policy, "clone3", errno.ENOSYS)
    fd = os.memfd_create("seccomp-policy")
    try:
        with os.fdopen(os.dup(fd), "wb") as sink:
            policy.export_bpf(sink)
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def _deny_arguments(policy) -> None:
    """The calls refused only with certain arguments."""
    policy.add_rule(
        _seccomp.ERRNO(errno.EPERM),
        "prctl",
        _seccomp.Arg(0, _seccomp.MASKED_EQ, _INT, PR_SET_DUMPABLE),
        _seccomp.Arg(1, _seccomp.NE, 0),
    )
    policy.add_rule(
        _seccomp.ERRNO(errno.EPERM), "fadvise64", _seccomp.Arg(3, _seccomp.MASKED_EQ, _INT, POSIX_FADV_DONTNEED)
    )
    for name in ("preadv2", "pwritev2"):  # EOPNOTSUPP: the kernel's own answer where a file cannot do it
        policy.add_rule(
            _seccomp.ERRNO(errno.EOPNOTSUPP), name, _seccomp.Arg(5, _seccomp.MASKED_EQ, RWF_NOWAIT, RWF_NOWAIT)
        )


def _deny(policy, name: str, code: int) -> None:
    try:
        policy.add_rule(_seccomp.ERRNO(code), name)
    except (OSError, ValueError):  # a call this kernel/libseccomp does not know: nothing to deny
        pass
