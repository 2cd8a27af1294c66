"""From a raw sandbox outcome to exactly one status of the fixed taxonomy (docs/outputs.md).

  passed         base: check(candidate) returned; plus: every output matched
  failed         wrong answer or failed assertion (also: output of a non-builtin type)
  error          an exception; error_type is its class name
  syntax_error   the program does not compile
  timeout        wall-clock or CPU limit exceeded
  out_of_memory  MemoryError under RLIMIT_AS
  crashed        killed by a signal (error_type: its name) or exited before reporting a verdict
  empty          blank completion; not run
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np

from ray_jobs.sandbox.codec import NEVER_EQUAL, decode, equality_digest

STATUSES = ("passed", "failed", "error", "syntax_error", "timeout", "out_of_memory", "crashed", "empty")
MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Verdict:
    status: str
    error_type: str | None = None
    error_message: str | None = None
    runtime_s: float | None = None  # test execution time as the sample reported it; passed only

    @property
    def passed(self) -> bool:
        return self.status == "passed"


PASSED = Verdict("passed")
EMPTY = Verdict("empty", None, "blank completion")


def _frames(raw: dict) -> list[tuple[str, str]]:
    frames = []
    for line in raw["result"].split("\n"):
        if line:
            kind, _, rest = line.partition(" ")
            frames.append((kind, rest))
    return frames


def _exception_verdict(payload: str) -> Verdict:
    try:
        info = json.loads(payload)
        exc_type, message, phase = str(info["type"]), str(info["message"]), str(info["phase"])
    except (ValueError, KeyError, TypeError):
        return Verdict("crashed", "MalformedReport", payload[:MESSAGE_CHARS])
    message = message[:MESSAGE_CHARS]
    if phase == "compile":
        return Verdict("syntax_error", exc_type, message)
    if exc_type == "MemoryError":
        return Verdict("out_of_memory", exc_type, message)
    if exc_type == "AssertionError":
        return Verdict("failed", exc_type, message)
    return Verdict("error", exc_type, message)


def _process_verdict(raw: dict) -> Verdict:
    """No verdict line: decide from how the process ended."""
    if raw.get("worker_died"):
        return Verdict("crashed", "SIGKILL", "the sample took its sandbox worker down; the worker was respawned")
    if raw["timed_out"]:
        return Verdict("timeout", None, "wall-clock limit exceeded")
    if raw["signal"] == "SIGXCPU":
        return Verdict("timeout", None, "CPU-time limit exceeded")
    if raw["signal"]:
        return Verdict("crashed", raw["signal"], f"killed by {raw['signal']}")
    return Verdict("crashed", "EarlyExit", f"exited with code {raw['exit_code']} before the check completed")


def _passed(frames: list[tuple[str, str]]) -> Verdict:
    """The sample's own timing: advisory (a sample can lie about it), so only sanity-checked."""
    reported = [rest for kind, rest in frames if kind == "R"]
    try:
        runtime = float(reported[-1]) if reported else None
    except ValueError:
        runtime = None
    if runtime is not None and not (math.isfinite(runtime) and runtime >= 0):
        runtime = None
    return replace(PASSED, runtime_s=runtime)


def base_verdict(raw: dict, token: str) -> Verdict:
    frames = _frames(raw)
    if frames and frames[-1] == ("P", token):
        return _passed(frames)
    for kind, rest in frames:
        if kind == "E":
            return _exception_verdict(rest)
    return _process_verdict(raw)


def _poly(xs: list, x: float) -> float:
    """EvalPlus's special oracle for HumanEval/32 (find_zero): the root is checked, not matched."""
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    return False


def outputs_match(out, expected, args: list, entry_point: str, atol: float) -> bool:
    """EvalPlus's comparison (evalplus/eval/__init__.py, unsafe_execute), on decoded builtins."""
    try:
        if entry_point == "find_zero":
            return abs(_poly(*args, out)) <= atol
        exact = out == expected
        if atol == 0 and _is_floats(expected):
            atol = 1e-6
        if not exact and atol != 0:
            if type(out) is not type(expected):
                return False
            if isinstance(expected, (list, tuple)) and len(out) != len(expected):
                return False
            return bool(np.allclose(out, expected, rtol=1e-07, atol=atol))
        return bool(exact)
    except Exception:
        return False


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def plus_verdict(raw: dict, oracle) -> Verdict:
    """`oracle` is a groundtruth.TaskOracle. Outputs arrive in input order, one line each."""
    index = 0
    total = len(oracle.inputs)
    frames = _frames(raw)
    for kind, rest in frames:
        if kind in ("O", "H"):
            if index >= total:
                return Verdict("failed", None, "more outputs than inputs")
            if not _output_matches(kind, rest, oracle, index):
                shown = "" if kind == "H" else f", got {_short(_safe_decode(rest))}"
                large = oracle.expected_digest[index] is not None
                want = "expected a different large output" if large else f"expected {_short(oracle.expected[index])}"
                return Verdict("failed", None, f"input #{index}: {want}{shown}")
            index += 1
        elif kind == "E":
            return _exception_verdict(rest)
        elif kind == "T":
            return Verdict("timeout", None, f"input #{rest} exceeded its time limit")
        elif kind == "U":
            position, _, type_name = rest.partition(" ")
            return Verdict("failed", "UnencodableOutput", f"input #{position}: output of type {type_name} is not a builtin type")
        elif kind == "D":
            return _passed(frames) if index == total else Verdict("failed", None, f"{index} outputs for {total} inputs")
    return _process_verdict(raw)


def _safe_decode(text: str):
    try:
        return decode(text)
    except (ValueError, RecursionError, TypeError):
        return "<undecodable>"


def _output_matches(kind: str, payload: str, oracle, index: int) -> bool:
    expected, expected_digest = oracle.expected[index], oracle.expected_digest[index]
    if kind == "H":  # a large candidate output arrives as its digest
        digest = expected_digest if expected_digest is not None else equality_digest(expected)
        return payload != NEVER_EQUAL and payload == digest
    try:
        out = decode(payload)
    except (ValueError, RecursionError, TypeError):
        return False
    if expected_digest is not None:  # expected is large, this output is small
        return expected_digest != NEVER_EQUAL and equality_digest(out) == expected_digest
    return outputs_match(out, expected, oracle.inputs[index], oracle.entry_point, oracle.atol)
