"""What every command-line entry point shares: user errors become one clear line and exit code 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ray_jobs import config
from ray_jobs.datasets import DatasetError
from ray_jobs.preflight import PreflightError
from ray_jobs.samples_io import SamplesError
from serve_app.model_info import ModelSourceError

USER_ERRORS: tuple[type[Exception], ...] = (config.ConfigError, SamplesError, DatasetError, PermissionError,
                                            PreflightError, ModelSourceError)


def run_command(job: Callable[[], dict], extra_errors: tuple[type[Exception], ...] = ()) -> dict | None:
    """Run `job`; print user errors (and I/O errors such as a full disk: outputs are written
    atomically, so none is left half-written) as one line. None means: exit with code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return job()
    except USER_ERRORS + extra_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot write outputs: {exc}", file=sys.stderr)
    return None


def print_pass_at_k(summary: dict, output_dir) -> None:
    for suite, values in summary["pass_at_k"].items():
        print(f"{suite}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
    print(f"wrote {output_dir}/summary.json")
