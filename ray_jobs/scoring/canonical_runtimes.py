"""Canonical solutions' test runtimes, kept between runs beside the expected outputs.

A passed sample's `canonical_runtime_s` is the canonical solution's effective (load-independent)
runtime on the same inputs, in the same sandbox. Measuring it runs every canonical solution once
per run (HumanEval+: ~17 s of one worker, about a tenth of a run's scoring; MBPP+: 47 s), so the
measurements are kept in the cache directory and a later run on the same kind of machine only
measures what is missing. The file is keyed by everything the figure depends on: the dataset file,
the sandbox settings, the CPU model and the Python version. It is advisory, like the runtimes
themselves (never part of a verdict): a file that cannot be read is ignored and one that cannot be
written is skipped, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import sys
from pathlib import Path

from ray_jobs.sandbox.config import SandboxConfig
from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import Dataset

log = logging.getLogger(__name__)

CACHE_VERSION = 1
Runtimes = dict[tuple[str, str], float | None]  # (task_id, suite) -> seconds; None: it did not pass


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_file(cache_dir: Path, dataset: Dataset, sandbox: SandboxConfig) -> Path:
    identity = {
        "version": CACHE_VERSION,
        "dataset": dataset.sha256,
        "sandbox": sandbox.model_dump(mode="json"),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"canonical-runtimes-{dataset.name}-{key}.json"


def load(path: Path) -> Runtimes:
    """The runtimes kept in `path`; none where it is missing or unreadable."""
    try:
        rows = json.loads(path.read_text())
        return {(str(task_id), str(suite)): float(seconds) for task_id, suite, seconds in rows}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring the canonical runtimes in %s, which cannot be read: %s", path, exc)
        return {}


def save(path: Path, runtimes: Runtimes) -> None:
    """Keep the measured runtimes (with those already kept). A None (the canonical solution did
    not pass in that run) is not kept: the next run measures it again."""
    kept = {**load(path), **{key: s for key, s in runtimes.items() if s is not None and math.isfinite(s)}}
    rows = [[task_id, suite, seconds] for (task_id, suite), seconds in sorted(kept.items())]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(rows))
    except OSError as exc:
        log.warning("could not keep the canonical runtimes in %s: %s", path, exc)
