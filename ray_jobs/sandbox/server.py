"""The warm fork server: started once per scoring worker, forks one short-lived process per sample.

Run as ``python -m ray_jobs.sandbox.server`` by :class:`ray_jobs.sandbox.client.Sandbox`.
Protocol on stdin/stdout, each frame a 4-byte big-endian length and a payload:
  client -> server: pickle (the client is trusted), server -> client: JSON (the server shares a
  kernel view with hostile code, so the client never unpickles what it sends).
"""

from __future__ import annotations

import gc
import json
import math
import os
import pickle
import select
import shutil
import signal
import struct
import sys
import time

from ray_jobs.sandbox import child, isolation

_HEADER = struct.Struct(">I")
RESULT_FD = 3
WORKDIR = "/tmp/work"  # on the private tmpfs; also the samples' TMPDIR
_PARKED_RESULT_FD, _PARKED_OUTPUT_FD = 1021, 1022

# Imported once here so that samples using them fork with them already loaded.
_WARM_MODULES = (
    "typing", "math", "re", "collections", "itertools", "functools", "heapq", "string",
    "hashlib", "bisect", "copy", "random", "statistics", "fractions", "decimal",
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

    exec(compile(_WARM_UP_PROGRAM, "<warm-up>", "exec"), {"__name__": "__main__"})
    encode([(1, 2.5), {"a": {1, 2}}, None, "s", True])
    json.dumps({"type": "x", "message": "y", "phase": "run"})


def read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exact(fd, _HEADER.unpack(header)[0])


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    child._write_all(fd, _HEADER.pack(len(payload)) + payload)


class _CappedBuffer:
    """Keeps the first `cap` bytes, counts the rest: a flooding sample cannot exhaust memory."""

    def __init__(self, cap: int):
        self.cap, self.data, self.total = cap, bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


class ForkServer:
    def __init__(self, settings: dict, fd_in: int, fd_out: int):
        self.settings = settings
        self.fd_in, self.fd_out = fd_in, fd_out
        self.inputs: dict[str, list] = {}
        self.is_pid1 = os.getpid() == 1
        os.makedirs(WORKDIR, exist_ok=True)

    # -- one sample ---------------------------------------------------------------------------
    def _child_main(self, job: dict, res_w: int, out_w: int) -> None:
        try:
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
            if not self.is_pid1:  # in a pid namespace the kernel kills us all when PID 1 dies
                isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
            os.chdir(WORKDIR)
            s = self.settings
            isolation.apply_sample_limits(
                s["memory_mb"], math.ceil(job["deadline"]) + 1, s["file_mb"], s["max_open_files"]
            )
            if job["mode"] == "check":
                child.run_check(job["program"], job["token"], RESULT_FD)
            else:
                child.run_outputs(
                    job["program"], job["entry_point"], self.inputs[job["inputs_key"]],
                    job["time_limits"], RESULT_FD,
                )
            child.flush_std_streams()
        except BaseException as exc:  # a harness failure; the sample's own errors are reported above
            try:
                child._report_exception(RESULT_FD, exc, "harness")
            except BaseException:
                pass
        finally:
            os._exit(0)

    def run_one(self, job: dict) -> dict:
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(res_r)
            os.close(out_r)
            self._child_main(job, res_w, out_w)
        os.close(res_w)
        os.close(out_w)
        result = _CappedBuffer(self.settings["result_cap_bytes"])
        output = _CappedBuffer(self.settings["stdout_cap_bytes"])
        timed_out = self._watch(pid, job["deadline"], {res_r: result, out_r: output})
        _, status = os.waitpid(pid, 0)
        duration = time.perf_counter() - started
        self._kill_descendants()
        os.close(res_r)
        os.close(out_r)
        self._clear_workdir()
        return {
            "id": job["id"],
            "timed_out": timed_out,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None,
            "duration": duration,
            "result": result.data.decode("utf-8", "replace"),
            "result_truncated": result.truncated,
            "stdout": output.data.decode("utf-8", "replace"),
            "stdout_bytes": output.total,
        }

    @staticmethod
    def _clear_workdir() -> None:
        """Files a sample left must not be seen by the next one; listing is cheaper than rmtree."""
        for entry in os.scandir(WORKDIR):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    def _watch(self, pid: int, deadline: float, buffers: dict[int, _CappedBuffer]) -> bool:
        """Collect pipe output until the sample exits or its wall-clock deadline passes (then
        SIGKILL). Grandchildren may hold the pipes open, so exit is watched through a pidfd."""
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        for fd in buffers:
            poller.register(fd, select.POLLIN)
        end = time.monotonic() + deadline
        timed_out = False
        try:
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    os.kill(pid, signal.SIGKILL)
                    break
                events = poller.poll(remaining * 1000)
                if any(fd == pidfd for fd, _ in events):
                    break
                for fd, _ in events:
                    chunk = os.read(fd, 1 << 16)
                    if chunk:
                        buffers[fd].feed(chunk)
                    else:
                        poller.unregister(fd)
        finally:
            os.close(pidfd)
        for fd, buf in buffers.items():  # what was written before exit is still in the pipes
            os.set_blocking(fd, False)
            try:
                while chunk := os.read(fd, 1 << 16):
                    buf.feed(chunk)
            except BlockingIOError:
                pass
        return timed_out

    def _kill_descendants(self) -> None:
        """Every process still alive after the sample is one of its descendants: as PID 1 of the
        pid namespace (or as child subreaper) the server inherits them all. Kill and reap."""
        if self.is_pid1:
            self._kill_namespace()
            return
        while victims := self._children():
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for _ in victims:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break

    @staticmethod
    def _kill_namespace() -> None:
        # kill(-1) from PID 1 reaches every other process of the namespace in one pass, and a
        # process with SIGKILL pending cannot fork, so nothing escapes between the kill and reaping.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            while True:
                os.waitpid(-1, 0)
        except ChildProcessError:
            pass

    @staticmethod
    def _children() -> list[int]:
        pids = []
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as fh:
                pids.extend(int(p) for p in fh.read().split())
        return pids

    # -- protocol -----------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            frame = read_frame(self.fd_in)
            if frame is None:
                return
            message = pickle.loads(frame)
            op = message["op"]
            if op == "inputs":
                self.inputs[message["key"]] = message["inputs"]
            elif op == "run":
                for job in message["jobs"]:
                    write_frame(self.fd_out, json.dumps(self.run_one(job)).encode())
            elif op == "exit":
                return


def _wait_for_namespace_init(pid: int) -> None:
    """The process outside the pid namespace only waits: the protocol belongs to PID 1 inside."""
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main() -> None:
    fd_in, fd_out = 0, 1
    settings = pickle.loads(read_frame(fd_in))
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    report = isolation.LayerReport()
    if settings["parent_pid"] != os.getppid():  # the client died before we armed PDEATHSIG
        os._exit(1)
    if isolation.enter_namespaces(report, settings["namespaces"]):
        pid = os.fork()
        if pid:
            _wait_for_namespace_init(pid)
        isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        report.on("child_subreaper")
    except OSError as exc:
        report.off("child_subreaper", exc)
    isolation.private_mounts_and_proc(report)
    isolation.limit_pids(report, settings["max_pids"])
    keep_visible = [sys.prefix, sys.base_prefix, *(p for p in sys.path if p)]
    isolation.freeze_filesystem(report, settings["hidden_paths"], settings["scratch_mb"], keep_visible)
    isolation.lock_mounts(report)
    isolation.install_seccomp(report)
    isolation.prctl(isolation.PR_SET_DUMPABLE, 0)  # samples must not ptrace or read our memory
    sys.dont_write_bytecode = True
    for name in _WARM_MODULES:
        __import__(name)
    _warm_up()
    gc.collect()
    gc.freeze()  # a sample's collections then never walk (and copy-on-write) the inherited heap
    server = ForkServer(settings, fd_in, fd_out)
    write_frame(fd_out, json.dumps({"type": "ready", "layers": report.layers}).encode())
    server.serve()


if __name__ == "__main__":
    main()
