"""A sweep's second configuration scored with and without the first one's verdicts.

    .venv/bin/python benchmarks/sweep_shared_verdicts.py [--overlap 0.3] [--copies 10] [--repeat 3]
                                                         [--dataset humaneval_plus_mini] [--workers 2]

Two configurations of a sweep on one dataset often write the same program: the same code at
another temperature, with thinking on and off, from the next checkpoint. The first
configuration's samples are the failing mix (score_throughput.FAILING_MIX: mostly wrong answers,
some slow); the second's repeat `--overlap` of them verbatim and are new programs otherwise.
Both are scored in one Ray session, as a sweep's are; the baseline scores the second one with an
empty store of verdicts (each configuration on its own, as before), the candidate with the
first's (a sweep now). Alternating, `--repeat` times; medians of the second configuration's
scoring seconds. Its verdicts must be the same both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_throughput import failing_completion  # noqa: E402


def configurations(dataset: str, copies: int, overlap: float) -> tuple[list, list]:
    """(first configuration's items, second's): the second repeats `overlap` of the first's."""
    from ray_jobs.scoring.items import ScoreItem
    from ray_jobs.tasks.datasets import load_dataset

    first, second = [], []
    for task in load_dataset(dataset).tasks.values():
        for i in range(copies):
            text = failing_completion(task, i).rstrip("\n")
            first.append(ScoreItem(task.task_id, i, text + f"\n    # first {i}\n"))
            repeated = i < round(copies * overlap)
            second.append(
                ScoreItem(task.task_id, i, text + (f"\n    # first {i}\n" if repeated else f"\n    # second {i}\n"))
            )
    return first, second


def score(items: list, out: Path, dataset, workers: int, shared, name: str) -> tuple[float, list[tuple]]:
    from ray_jobs.config import SandboxConfig
    from ray_jobs.scoring.stage import ScoringStage

    started = time.perf_counter()
    with ScoringStage(
        dataset,
        out,
        SandboxConfig(),
        workers=workers,
        shard_size=200,
        dedupe=True,
        config_id=name,
        shard_salt=name,
        cache_dir=Path("~/.cache/ray_humaneval").expanduser(),
        expected_samples=len(items),
        progress=False,
        shared=shared,
    ) as stage:
        stage.submit(items)
        run = stage.close()
    verdicts = sorted((r["task_id"], r["completion_id"], r["suite"], r["status"]) for r in run.results.to_pylist())
    return time.perf_counter() - started, verdicts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="humaneval_plus_mini")
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--overlap", type=float, default=0.3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()

    import ray

    from ray_jobs.scoring.shared_verdicts import SharedVerdicts
    from ray_jobs.tasks.datasets import load_dataset

    dataset = load_dataset(args.dataset)
    first, second = configurations(args.dataset, args.copies, args.overlap)
    seconds: dict[str, list[float]] = {"alone": [], "shared": []}
    reference = None
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeat):
                for mode in ("alone", "shared"):
                    shared = SharedVerdicts()
                    if mode == "shared":  # the first configuration of the sweep, scored before
                        score(first, Path(tmp) / f"first-{r}", dataset, args.workers, shared, f"first-{r}")
                    took, verdicts = score(
                        second,
                        Path(tmp) / f"{mode}-{r}",
                        dataset,
                        args.workers,
                        shared if mode == "shared" else None,
                        f"second-{mode}-{r}",
                    )
                    reference = reference or verdicts
                    if verdicts != reference:
                        sys.exit(f"run {r + 1} ({mode}): verdicts differ from the first run's: void")
                    seconds[mode].append(took)
                    print(f"run {r + 1} {mode}: {took:.1f} s", flush=True)
    finally:
        ray.shutdown()
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    n = len(second)
    print(
        f"second configuration: {n} samples on {args.dataset}, {args.overlap:.0%} of them programs of the first; "
        f"identical verdicts in every run"
    )
    print(json.dumps({mode: [round(s, 1) for s in values] for mode, values in seconds.items()}))
    print(f"{'scoring the second configuration':<44}{'median s':>10}{'samples/s':>12}{'ratio':>8}")
    for name, mode in (("alone (baseline: no shared verdicts)", "alone"), ("with the first's verdicts", "shared")):
        print(f"{name:<44}{medians[mode]:>10.1f}{n / medians[mode]:>12.1f}{medians['alone'] / medians[mode]:>7.2f}x")


if __name__ == "__main__":
    main()
