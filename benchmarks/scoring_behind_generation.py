"""How much of scoring hides behind generation: the whole evaluate job at full scale against a
generator of known speed, this tree against an earlier revision that scored only after the last
generation shard.

    .venv/bin/python benchmarks/scoring_behind_generation.py --rev d014b43 [--rate 125] [--num-samples 200]
        [--limit 164] [--repeat 3]

A scripted Serve app (tests/support/scripted_deployment.py, 2 replicas) answers every request with a
distinct program (right, wrong or raising), paced to `--rate` samples/s per replica: generation
then takes a known time, and costs no CPU, as on a GPU node where the engines run on GPUs. Each
run is a fresh process attached to that app; baseline (`git worktree add` of `--rev`) and
candidate alternate `--repeat` times. Printed per side, medians: generation seconds, total
seconds, and the seconds from the last generation shard written to summary.json (the goal: at
most 30 s for 32,800 samples on 2 cores, where scoring keeps up with generation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_RUN = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ray_jobs import evaluate
from ray_jobs.config import EvalConfig
cfg = EvalConfig.model_validate(json.loads(sys.argv[2]))
started = time.perf_counter()
summary = evaluate.run(cfg, progress=False)
summary = summary if isinstance(summary, dict) else summary.model_dump(mode="json")  # older revisions return a dict
print("RESULT " + json.dumps({"total_s": time.perf_counter() - started, "generation_s": summary["timing"]["generation_s"],
                              "pass_at_k": summary["pass_at_k"]}))
"""


def run_job(tree: Path, config: dict, address: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "RAY_ADDRESS": address}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(tree), json.dumps(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )
    line = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"evaluate in {tree} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT ") :])
    out = Path(config["output_dir"])
    last_shard = max(p.stat().st_mtime for p in (out / "generations").glob("*.parquet"))
    result["after_generation_s"] = (out / "summary.json").stat().st_mtime - last_shard
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="git revision of the baseline (scoring after generation)")
    p.add_argument("--rate", type=float, default=125.0, help="samples/s per replica (2 replicas)")
    p.add_argument("--num-samples", type=int, default=200)
    p.add_argument("--limit", type=int, default=164)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    import ray
    from ray import serve

    from tests.support.scripted_deployment import ScriptedLLM

    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    app = f"paced-{uuid.uuid4().hex[:6]}"
    serve.run(ScriptedLLM.bind(), name=app, route_prefix=None)
    results: dict[str, list[dict]] = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(baseline), args.rev], cwd=ROOT, check=True, capture_output=True
        )
        try:
            for attempt in range(args.repeat):
                for side, tree in (("baseline", baseline), ("candidate", ROOT)):
                    config = {
                        "output_dir": str(Path(tmp) / f"{side}-{attempt}"),
                        "dataset": "humaneval",
                        "limit": args.limit,
                        "k": [1, 10],
                        "report": False,
                        "model": {"model": "scripted", "served_name": f"oracle-distinct@{args.rate:g}"},
                        "serving": {"app_name": app},
                        "sampling": {"seed": attempt * 100_000},
                        "generation": {"num_samples": args.num_samples, "chunk_size": 20},
                    }
                    results[side].append(run_job(tree, config, address))
                    print(side, json.dumps(results[side][-1]), flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=False, capture_output=True
            )
            serve.delete(app)
            ray.shutdown()
    if results["baseline"][0]["pass_at_k"] != results["candidate"][0]["pass_at_k"]:
        sys.exit("pass@k differs between baseline and candidate")
    samples = args.limit * args.num_samples
    print(
        f"\n{samples} samples, generation paced to {2 * args.rate:g} samples/s; medians of {args.repeat} alternating runs"
    )
    print(f"{'':<12}{'generation s':>14}{'total s':>10}{'after last shard s':>20}")
    med = {
        side: {k: statistics.median(r[k] for r in rows) for k in ("generation_s", "total_s", "after_generation_s")}
        for side, rows in results.items()
    }
    for side in ("baseline", "candidate"):
        m = med[side]
        print(f"{side:<12}{m['generation_s']:>14.1f}{m['total_s']:>10.1f}{m['after_generation_s']:>20.1f}")
    print(
        f"total: candidate/baseline {med['candidate']['total_s'] / med['baseline']['total_s']:.2f}x; "
        f"after the last shard: {med['baseline']['after_generation_s'] / max(med['candidate']['after_generation_s'], 1e-9):.1f}x less"
    )


if __name__ == "__main__":
    main()
