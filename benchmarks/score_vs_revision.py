"""Scoring throughput of this tree against an earlier revision of the project, same samples.

    .venv/bin/python benchmarks/score_vs_revision.py --rev 901e795 [--repeat 3] [--copies 10]
                                                    [--mixed | --failing] [--dataset humaneval] [--workers 2]
                                                    [--duplicates 0.27]

--failing: mostly wrong answers, some slow (score_throughput.FAILING_MIX), for fail-fast.
--duplicates: a share of each task's samples repeated verbatim (real sample files: 7-27%).

The baseline is `git worktree add` of `--rev` in a temporary directory, run with this tree's
virtual environment. Baseline and candidate alternate `--repeat` times (each run a fresh local Ray
and a fresh process), so both see the same quiet and busy spells of the machine; the medians of
the scoring stage's samples/s are compared. Per-sample verdicts of every run must agree with the
first candidate run's, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from score_throughput import make_samples  # noqa: E402

_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import ray
from ray_jobs import score
from ray_jobs.config import ScoreConfig
ray.init(address="local", num_cpus=int(sys.argv[4]), include_dashboard=False, logging_level="ERROR")
cfg = ScoreConfig(samples=sys.argv[2], output_dir=sys.argv[3], workers=int(sys.argv[4]), dataset=sys.argv[5])
summary = score.run(cfg, progress=False).model_dump(mode="json")
rows = [json.loads(line) for line in open(sys.argv[3] + "/samples_results.jsonl")]
print("RESULT " + json.dumps({"samples_per_s": (summary.get("scoring") or summary["timing"])["samples_per_s"], "passed": [r["passed"] for r in rows]}))
"""


def run_scorer(tree: Path, samples: Path, out: Path, workers: int, dataset: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(tree), str(samples), str(out), str(workers), dataset],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )
    line = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"scorer in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="git revision of the baseline")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--dataset", default="humaneval")
    p.add_argument("--mixed", action="store_true")
    p.add_argument("--failing", action="store_true", help="mostly wrong answers, some slow (FAILING_MIX)")
    p.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        help="share of each task's samples that repeat an earlier one verbatim (real files: 0.07-0.27)",
    )
    args = p.parse_args()
    mix = "failing" if args.failing else args.mixed
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(baseline), args.rev], cwd=ROOT, check=True, capture_output=True
        )
        try:
            samples = Path(tmp) / "samples.jsonl"
            n = make_samples(samples, args.copies, mix, args.dataset, args.duplicates)
            rates: dict[str, list[float]] = {"baseline": [], "candidate": []}
            reference = None
            for i in range(args.repeat):
                for name, tree in (("baseline", baseline), ("candidate", ROOT)):
                    result = run_scorer(tree, samples, Path(tmp) / f"{name}-{i}", args.workers, args.dataset)
                    reference = reference or result["passed"]
                    if result["passed"] != reference:
                        sys.exit(f"{name} run {i}: verdicts differ from the first run's; the comparison is void")
                    rates[name].append(result["samples_per_s"])
                    print(f"run {i} {name:<9} {result['samples_per_s']:8.1f} samples/s", flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=False, capture_output=True
            )
    base, cand = statistics.median(rates["baseline"]), statistics.median(rates["candidate"])
    kind = "failing mix" if args.failing else "mixed" if args.mixed else "canonical"
    print(
        f"{n} samples ({kind}, {args.dataset}, {args.duplicates:.0%} repeated), {args.workers} workers, "
        f"{args.repeat} alternating runs each; identical verdicts"
    )
    print(f"{'scorer':<40}{'median samples/s':>18}{'ratio':>8}")
    print(f"{'revision ' + args.rev + ' (baseline)':<40}{base:>18.1f}{1.0:>7.2f}x")
    print(f"{'this tree':<40}{cand:>18.1f}{cand / base:>7.2f}x")


if __name__ == "__main__":
    main()
