"""Each distinct program of a task runs once; its verdict goes to every identical copy."""

from __future__ import annotations

import time

from ray_jobs import score
from ray_jobs.config import SandboxConfig
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.scoring.items import ScoreItem, distinct_programs, score_items
from ray_jobs.tasks.datasets import load_dataset
from tests.integration.test_score_cli import write_jsonl

RIGHT = "    return number % 1.0\n"
SLOW_RIGHT = "    import time\n    time.sleep(0.5)\n    return number % 1.0\n"
WRONG = "    return 0.0\n"


def test_identical_programs_of_a_task_are_told_apart_only_by_id():
    items = [ScoreItem("HumanEval/2", 0, RIGHT), ScoreItem("HumanEval/2", 1, WRONG), ScoreItem("HumanEval/2", 2, RIGHT),
             ScoreItem("HumanEval/3", 0, RIGHT), ScoreItem("HumanEval/2", 3, RIGHT, found="fence")]
    runs, copies = distinct_programs(items)
    assert [(i.task_id, i.completion_id) for i in runs] == [("HumanEval/2", 0), ("HumanEval/2", 1), ("HumanEval/3", 0),
                                                           ("HumanEval/2", 3)]  # another task, or found elsewhere
    assert [(c.completion_id, s.completion_id) for c, s in copies] == [(2, 0)]


def test_copies_get_the_verdict_of_the_one_run_and_say_so():
    dataset = load_dataset("humaneval")
    items = [ScoreItem("HumanEval/2", i, SLOW_RIGHT if i % 2 == 0 else WRONG) for i in range(8)]
    config = SandboxConfig()
    with Sandbox(config) as sandbox:
        started = time.monotonic()
        deduped = score_items(items, dataset.tasks, ("base",), sandbox, config)
        once = time.monotonic() - started
        started = time.monotonic()
        every = score_items(items, dataset.tasks, ("base",), sandbox, config, dedupe=False)
        all_runs = time.monotonic() - started
    assert [r["status"] for r in deduped] == [r["status"] for r in every] == ["passed", "failed"] * 4
    assert [r["reused_from"] for r in deduped] == [None, None, 0, 1, 0, 1, 0, 1]
    assert all(r["reused_from"] is None for r in every)
    copy = deduped[2]
    assert copy["duration_s"] == 0.0 and copy["cpu_s"] is None and copy["runtime_s"] == deduped[0]["runtime_s"]
    assert once < all_runs / 2  # one 0.5 s run (7 calls of check) instead of four


def test_summary_counts_the_runs_saved_and_pass_at_k_is_unchanged(tmp_path, ray_local):
    rows = [{"task_id": f"HumanEval/{t}", "completion": text} for t in (2, 3)
            for text in (RIGHT if t == 2 else "    return sum(operations) < 0\n", WRONG, WRONG, WRONG)]
    samples = write_jsonl(tmp_path / "s.jsonl", rows)
    results = {}
    for flag in ("--dedupe", "--no-dedupe"):
        out = tmp_path / flag
        assert score.main(["--samples", str(samples), "--output-dir", str(out), "--allow-missing-tasks", "--k", "1,2",
                           "--no-progress", flag]) == 0
        results[flag] = score.Summary.model_validate_json((out / "summary.json").read_text())
    assert results["--dedupe"].scoring.reused_verdicts == 4 and results["--no-dedupe"].scoring.reused_verdicts == 0
    assert results["--dedupe"].pass_at_k == results["--no-dedupe"].pass_at_k
    assert results["--dedupe"].status_counts == results["--no-dedupe"].status_counts


def test_a_canonical_runtime_measured_by_one_worker_is_not_measured_again(ray_local):
    """The pool hands the runtimes it has seen to every worker: each canonical solution then runs
    about once per run, not once per worker (47 s per worker on MBPP+)."""
    import ray

    from ray_jobs.scoring.shards import ScoringWorker

    worker = ScoringWorker.remote("humaneval", SandboxConfig().model_dump(), None)
    try:
        rows = ray.get(worker.score.remote([ScoreItem("HumanEval/2", 0, RIGHT)], ("base",), True,
                                           {("HumanEval/2", "base"): 123.0}))
        right = load_dataset("humaneval").tasks["HumanEval/3"].canonical_solution + "    # a copy\n"
        measured = ray.get(worker.score.remote([ScoreItem("HumanEval/3", 0, right)], ("base",), True, {}))
    finally:
        ray.kill(worker)
    assert rows[0]["passed"] and rows[0]["canonical_runtime_s"] == 123.0  # taken as given, not run
    assert measured[0]["passed"] and measured[0]["canonical_runtime_s"] not in (None, 123.0)  # measured where nobody knew it
