"""The contract every command-line entry point keeps (evaluate, score, sweep, report, demo,
serve_app.serve):

- bad input (a flag, a config file, a samples file, a model that cannot be served, outputs that
  cannot be written: a contracts.UserError) exits 2 with one line naming the problem, never a
  traceback; anything else is a bug and keeps its traceback, with the path of the full log;
- Ctrl-C or SIGTERM exits 130; outputs are written atomically, so nothing is left half-written;
- a stage stuck past the watchdog's limit (ray_jobs.watchdog) exits 3, naming the stage and place;
- each flag is declared once, with the config field it overrides (flags override YAML).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel

from contracts import UserError
from ray_jobs import config, console, watchdog
from ray_jobs.ray_runtime import stop_like_ctrl_c

INTERRUPTED = 130


class UsageError(config.ConfigError):
    """A malformed command line."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that every problem, a bad
    flag included, reaches the one error path."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def int_list(flag: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise config.ConfigError(f"{flag} takes comma-separated integers, e.g. 1,10,100; got {text!r}") from None

    return parse


@dataclass(frozen=True)
class Flag:
    """A flag and the config field (dotted path) it sets; `parse` turns its text into the value
    and raises ConfigError on bad text."""

    flag: str
    field: str
    help: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[str], Any] | None = None


def add_flags(p: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    for f in flags:
        p.add_argument(f.flag, dest=f.field.replace(".", "__"), help=f.help, **f.options)


def overrides(args: argparse.Namespace, flags: Sequence[Flag]) -> dict:
    """The nested config overrides of the flags that were given."""
    nested: dict = {}
    for f in flags:
        value = getattr(args, f.field.replace(".", "__"))
        if value is None:
            continue
        node = nested
        *parents, leaf = f.field.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = f.parse(value) if f.parse else value
    return nested


def build_config(model: type[BaseModel], args: argparse.Namespace, flags: Sequence[Flag]):
    """YAML (--config) first, then the given flags; a required field nobody set names its flag."""
    return config.build(
        model, getattr(args, "config", None), overrides(args, flags), flag_names={f.field: f.flag for f in flags}
    )


def pipeline_args(
    argv: list[str] | None, prog: str, doc: str | None, model: type[BaseModel], flags: Sequence[Flag], verbose_help: str
) -> argparse.Namespace:
    """The command line of evaluate and score: --config (YAML of `model`'s fields), the flags,
    --no-progress and --verbose."""
    p = parser(prog, doc)
    p.add_argument("--config", type=Path, help=f"YAML with {model.__name__} fields; flags override it")
    add_flags(p, flags)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true", help=verbose_help)
    return p.parse_args(argv)


def run_pipeline_command(
    argv: list[str] | None, parse_args: Callable, build_config: Callable, run: Callable[..., Any]
) -> int:
    """evaluate and score: flags -> config -> a quiet run (unless --verbose) -> the result."""

    def job() -> int:
        args = parse_args(argv)
        configure_logging(args.verbose)
        summary = run(build_config(args), progress=not args.no_progress, quiet=not args.verbose)
        console.result(summary.pass_at_k, summary.missing_modules, summary.sandbox.degraded, summary.output_dir)
        return 0

    return run_command(job)


def _full_log() -> str:
    return f" (full log: {console.last_log()})" if console.last_log() else ""


def run_command(job: Callable[[], int | None]) -> int:
    """Run an entry point's body under the contract above; returns the exit code."""
    stop_like_ctrl_c()
    console.forget_log()
    try:
        return job() or 0
    except UserError as exc:
        print(f"error: {exc}{_full_log()}", file=sys.stderr)
    except watchdog.StageStuck as exc:
        print(f"error: {exc}{_full_log()}", file=sys.stderr)
        return watchdog.STUCK_EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted; finished shards are kept, and a rerun resumes from them", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        if console.last_log():
            print(f"unexpected failure, a bug (full log: {console.last_log()}):", file=sys.stderr)
        raise
    return 2


_OUR_HANDLERS: list[logging.Handler] = []


class _TerminalFilter(logging.Filter):
    """INFO records reach stderr only when it is the run's log file (or with --verbose)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.levelno >= logging.WARNING or console.quiet_active()


def configure_logging(verbose: bool) -> None:
    """Job logs go to stderr: the run's log file while the terminal is quiet, else the terminal
    (warnings only, unless --verbose)."""
    root = logging.getLogger()
    for handler in _OUR_HANDLERS:
        root.removeHandler(handler)
    _OUR_HANDLERS.clear()
    handler = logging.StreamHandler()  # writes to whatever sys.stderr is then: fd 2
    handler.addFilter(_TerminalFilter(verbose))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _OUR_HANDLERS.append(handler)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
