"""Run by test_faults.py in its own interpreter: a simulated 3-node Ray cluster, scoring with a
worker node removed halfway. Prints one JSON line with the outcome."""

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from ray_jobs import score
from ray_jobs.config import ScoreConfig

samples, out, remove = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "remove"
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
ray.init(address=cluster.address)
# a generous timeout: verdicts must not depend on how loaded the machine is while a node restarts
cfg = ScoreConfig(samples=samples, output_dir=out, workers=4, shard_size=20, sandbox={"timeout_s": 30.0})
result = {}
thread = threading.Thread(target=lambda: result.update(score.run(cfg, progress=False).model_dump(mode="json")))
thread.start()
removed = False
if remove:
    while not removed and thread.is_alive():
        if len(list((out / "results").glob("*.parquet"))) >= 3:
            cluster.remove_node(workers[1])  # in the middle of scoring
            cluster.add_node(num_cpus=2)  # a replacement, as an autoscaler would
            removed = True
        time.sleep(0.05)
thread.join()
print(
    "RESULT "
    + json.dumps(
        {
            "removed": removed,
            "pass_at_k": result["pass_at_k"],
            "status_counts": result["status_counts"],
            "samples": result["samples"],
            "shards": len(list((out / "results").glob("*.parquet"))),
        }
    ),
    flush=True,
)
ray.shutdown()
cluster.shutdown()
