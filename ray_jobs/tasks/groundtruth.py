"""Expected outputs of the differential suites (HumanEval+'s plus suite, both MBPP+ suites), as
EvalPlus defines them.

Expected outputs come from running each task's canonical solution (trusted code) on its base and
plus inputs, timing every call. For the MBPP tasks whose outputs are no comparable values (a
`re.Match`), EvalPlus keeps only whether the output is not None, and so does this module. The
per-input time limit of a candidate is ``max(min_time_limit, factor * canonical_runtime)``
(EvalPlus defaults: 1.0 s and 4.0).
Computed once per dataset file and cached; the cache dir is hidden from samples.
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ray_jobs.sandbox.codec import UnencodableValue, encode_or_digest
from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import Dataset, Task, load_dataset

CACHE_VERSION = 3  # 3: the benchmark's comparison rules as fields; 2: TaskOracle moved here (pickles name their module)


@dataclass
class TaskOracle:
    task_id: str
    entry_point: str
    inputs: list  # base inputs first, then plus inputs
    expected: list  # the canonical output; None where it is large (then expected_digest is set)
    expected_digest: list  # codec.equality_digest of large outputs; None marks a small one
    canonical_seconds: list[float]
    atol: float
    # the benchmark's comparison rules (tasks/benchmarks.py), carried to the judge with the outputs
    special_oracles: str = "humaneval"
    dict_subclasses: bool = False
    output_not_none: bool = False  # compared as `output is not None` (EvalPlus's MBPP_OUTPUT_NOT_NONE_TASKS)

    def time_limits(self, min_limit: float, factor: float) -> list[float]:
        return [max(min_limit, factor * t) for t in self.canonical_seconds]

    def head(self, count: int) -> TaskOracle:
        """The oracle of the first `count` inputs (MBPP's base suite: its base inputs)."""
        return TaskOracle(
            self.task_id,
            self.entry_point,
            self.inputs[:count],
            self.expected[:count],
            self.expected_digest[:count],
            self.canonical_seconds[:count],
            self.atol,
            self.special_oracles,
            self.dict_subclasses,
            self.output_not_none,
        )


def _run_canonical(task: Task) -> TaskOracle:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(task.prompt + task.canonical_solution, task.task_id, "exec"), namespace)
    fn = namespace[task.entry_point]
    inputs = task.base_inputs + task.plus_inputs
    spec = task.benchmark
    output_not_none = task.entry_point in spec.output_not_none_tasks
    expected, digests, seconds = [], [], []
    for args in inputs:
        args = copy.deepcopy(args)
        start = time.perf_counter()
        out = fn(*args)
        seconds.append(time.perf_counter() - start)
        if output_not_none:
            out = out is not None  # evalplus/gen/util/__init__.py, trusted_exec(output_not_none=True)
        try:
            kind, digest = encode_or_digest(out, dict_subclasses=spec.dict_subclasses)
        except UnencodableValue as exc:  # would make the task unpassable: fail loudly instead
            raise RuntimeError(f"{task.task_id}: canonical output of type {exc} is not a builtin type") from None
        large = kind == "H"
        expected.append(None if large else out)
        digests.append(digest if large else None)
    return TaskOracle(
        task.task_id,
        task.entry_point,
        inputs,
        expected,
        digests,
        seconds,
        task.atol,
        spec.special_oracles,
        spec.dict_subclasses,
        output_not_none,
    )


def _cache_file(cache_dir: Path, dataset: Dataset) -> Path:
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(cache_dir) / f"groundtruth-{dataset.name}-{dataset.sha256[:16]}-{py}-v{CACHE_VERSION}.pkl"


def build_cache(dataset_name: str, cache_dir: Path, workers: int) -> Path:
    dataset = load_dataset(dataset_name)
    path = _cache_file(cache_dir, dataset)
    tasks = sorted(dataset.tasks.values(), key=lambda t: -len(t.plus_inputs))  # longest first
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        oracles = {o.task_id: o for o in pool.map(_run_canonical, tasks)}
    atomic.write_bytes(path, pickle.dumps(oracles, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_oracles(dataset_name: str, cache_dir: Path, workers: int = 2) -> dict[str, TaskOracle]:
    """Oracles for every task of a dataset with differential suites, from the cache or computed
    (and cached).

    Computed in a child interpreter: a spawn pool started from here would re-import the caller's
    __main__, which breaks scripts without a main guard."""
    path = _cache_file(cache_dir, load_dataset(dataset_name))
    if not path.exists():
        print(
            f"computing the expected outputs of {dataset_name} (once; cached in {path.parent}) ...",
            file=sys.stderr,
            flush=True,
        )
        subprocess.run(
            [sys.executable, "-m", "ray_jobs.tasks.groundtruth", dataset_name, str(cache_dir), str(workers)],
            check=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
    with path.open("rb") as fh:
        return pickle.load(fh)


if __name__ == "__main__":
    from ray_jobs.tasks import groundtruth  # pickle the classes under their importable name, not __main__

    groundtruth.build_cache(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
