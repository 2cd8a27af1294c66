"""What keeping the canonical runtimes between runs saves: the same `score` run with an empty
cache directory (every canonical solution measured) and with one a previous run filled.

    .venv/bin/python benchmarks/canonical_runtime_cache.py [--dataset humaneval_plus] [--copies 2] [--repeat 3]

Samples: every task's canonical solution `--copies` times, each with a comment that makes it a
distinct program (so it is not its own reference and the canonical solution is measured). Both
sides get the expected outputs already computed (copied from ~/.cache/ray_humaneval); they
differ only in the kept canonical runtimes. One local Ray for all runs, 2 workers, alternating
(cold first), medians printed with the ratio; the per-sample verdicts must be identical.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_throughput import make_samples
from score_vs_evalplus import our_verdicts

USER_CACHE = Path("~/.cache/ray_humaneval").expanduser()


def run_score(samples: Path, out: Path, cache_dir: Path, dataset: str, workers: int) -> tuple[float, dict]:
    """(seconds, (task_id, completion_id, suite) -> passed)."""
    from ray_jobs import score
    from ray_jobs.config import ScoreConfig

    cfg = ScoreConfig(samples=samples, output_dir=out, workers=workers, dataset=dataset, cache_dir=cache_dir)
    started = time.perf_counter()
    score.run(cfg, progress=False)
    return time.perf_counter() - started, our_verdicts(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="humaneval_plus")
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    import ray

    from ray_jobs.tasks.groundtruth import load_oracles

    load_oracles(args.dataset, USER_CACHE)  # computed once, outside the timing
    truth = sorted(USER_CACHE.glob(f"groundtruth-{args.dataset}-*.pkl"))
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            samples = Path(tmp) / "samples.jsonl"
            n = make_samples(samples, args.copies, mixed=False, dataset=args.dataset)
            warm = Path(tmp) / "warm-cache"
            warm.mkdir()
            for path in truth:
                shutil.copy(path, warm)
            run_score(samples, Path(tmp) / "fill", warm, args.dataset, args.workers)  # fills the kept runtimes
            counts = {}
            for r in range(args.repeat):
                cold = Path(tmp) / f"cold-cache-{r}"
                cold.mkdir()
                for path in truth:
                    shutil.copy(path, cold)
                for side, cache in (("cold", cold), ("warm", warm)):
                    seconds, counts[side] = run_score(
                        samples, Path(tmp) / f"{side}-{r}", cache, args.dataset, args.workers
                    )
                    timings[side].append(seconds)
                    print(f"run {r + 1} {side}: {seconds:.1f} s", flush=True)
                if counts["cold"] != counts["warm"]:
                    differ = [k for k in counts["cold"] if counts["cold"][k] != counts["warm"].get(k)]
                    sys.exit(f"verdicts differ on {len(differ)} (sample, suite) pairs, e.g. {differ[:5]}")
    finally:
        ray.shutdown()
    cold_s, warm_s = statistics.median(timings["cold"]), statistics.median(timings["warm"])
    print(f"{n} samples on {args.dataset}, {args.workers} workers, medians of {args.repeat} alternating runs")
    print(f"{'canonical runtimes':<40}{'seconds':>10}{'ratio':>8}")
    print(f"{'measured in the run (baseline)':<40}{cold_s:>10.1f}{1.0:>7.2f}x")
    print(f"{'kept from an earlier run':<40}{warm_s:>10.1f}{cold_s / warm_s:>7.2f}x")


if __name__ == "__main__":
    main()
