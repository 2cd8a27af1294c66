"""Each distinct program of a task runs once; its verdict goes to every identical copy."""

from __future__ import annotations

import time

from ray_jobs import score
from ray_jobs.config import SandboxConfig
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.scoring.items import ScoreItem, distinct_programs, score_items
from ray_jobs.scoring.shards import make_shards
from ray_jobs.scoring.shared_verdicts import SharedVerdicts
from ray_jobs.storage import schemas
from ray_jobs.tasks.datasets import load_dataset
from tests.integration.test_score_cli import write_jsonl
from tests.support.scoring import score_shards

RIGHT = "    return number % 1.0\n"
SLOW_RIGHT = "    import time\n    time.sleep(0.5)\n    return number % 1.0\n"
WRONG = "    return 0.0\n"


def test_identical_programs_of_a_task_are_told_apart_only_by_id():
    items = [
        ScoreItem("HumanEval/2", 0, RIGHT),
        ScoreItem("HumanEval/2", 1, WRONG),
        ScoreItem("HumanEval/2", 2, RIGHT),
        ScoreItem("HumanEval/3", 0, RIGHT),
        ScoreItem("HumanEval/2", 3, RIGHT, found="fence"),
    ]
    runs, copies = distinct_programs(items)
    assert [(i.task_id, i.completion_id) for i in runs] == [
        ("HumanEval/2", 0),
        ("HumanEval/2", 1),
        ("HumanEval/3", 0),
        ("HumanEval/2", 3),
    ]  # another task, or found elsewhere
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
    rows = [
        {"task_id": f"HumanEval/{t}", "completion": text}
        for t in (2, 3)
        for text in (RIGHT if t == 2 else "    return sum(operations) < 0\n", WRONG, WRONG, WRONG)
    ]
    samples = write_jsonl(tmp_path / "s.jsonl", rows)
    results = {}
    for flag in ("--dedupe", "--no-dedupe"):
        out = tmp_path / flag
        assert (
            score.main(
                [
                    "--samples",
                    str(samples),
                    "--output-dir",
                    str(out),
                    "--allow-missing-tasks",
                    "--k",
                    "1,2",
                    "--no-progress",
                    flag,
                ]
            )
            == 0
        )
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
        rows = ray.get(
            worker.score.remote([ScoreItem("HumanEval/2", 0, RIGHT)], ("base",), True, {("HumanEval/2", "base"): 123.0})
        )
        right = load_dataset("humaneval").tasks["HumanEval/3"].canonical_solution + "    # a copy\n"
        measured = ray.get(worker.score.remote([ScoreItem("HumanEval/3", 0, right)], ("base",), True, {}))
    finally:
        ray.kill(worker)
    assert rows[0]["passed"] and rows[0]["canonical_runtime_s"] == 123.0  # taken as given, not run
    assert measured[0]["passed"] and measured[0]["canonical_runtime_s"] not in (
        None,
        123.0,
    )  # measured where nobody knew it


def test_shared_verdicts_give_only_complete_runs_of_a_program():
    right, wrong = ScoreItem("HumanEval/2", 0, RIGHT), ScoreItem("HumanEval/2", 1, WRONG)
    shared = SharedVerdicts()
    row = {
        "task_id": "HumanEval/2",
        "completion_id": 0,
        "suite": "base",
        "status": "passed",
        "reused_from": None,
        "config_id": "first",
        "duration_s": 0.2,
        "cpu_s": 0.1,
        "effective_s": 0.2,
    }
    crashed = {**row, "completion_id": 1, "status": "crashed"}  # the scorer failed: no verdict of the program
    shared.record([right, wrong], [row, crashed])
    given, todo = shared.reuse([ScoreItem("HumanEval/2", 7, RIGHT), ScoreItem("HumanEval/2", 8, WRONG)], ("base",))
    assert [i.completion_id for i in todo] == [8]
    assert given == [
        {
            **row,
            "completion_id": 7,
            "reused_from": 0,
            "reused_config": "first",
            "duration_s": 0.0,
            "cpu_s": None,
            "effective_s": None,
        }
    ]
    assert shared.reuse([ScoreItem("HumanEval/2", 9, RIGHT)], ("base", "plus")) == (
        [],
        [ScoreItem("HumanEval/2", 9, RIGHT)],
    )


def test_a_program_scored_by_one_configuration_is_not_run_by_another(tmp_path, ray_local):
    """A sweep's configurations on one dataset and sandbox share verdicts: the second run's copies
    of the first's programs take their verdicts (reused_config names the first), the rest run."""
    first = [ScoreItem("HumanEval/2", i, SLOW_RIGHT if i % 2 == 0 else WRONG) for i in range(4)]
    second = [
        ScoreItem("HumanEval/2", 0, WRONG),
        ScoreItem("HumanEval/2", 1, SLOW_RIGHT),
        ScoreItem("HumanEval/2", 2, "    return number - int(number)\n"),
    ]
    shared = SharedVerdicts()
    runs = {}
    for name, items in (("first", first), ("second", second)):
        runs[name] = score_shards(
            make_shards(items, 200, name),
            tmp_path / name,
            "humaneval",
            ("base",),
            SandboxConfig(),
            None,
            1,
            name,
            progress=False,
            shared=shared,
        )
    rows = runs["second"].results.to_pylist()
    assert [(r["completion_id"], r["status"], r["reused_from"], r["reused_config"]) for r in rows] == [
        (0, "failed", 1, "first"),
        (1, "passed", 0, "first"),
        (2, "passed", None, None),
    ]
    assert all(r["config_id"] == "second" for r in rows) and rows[1]["duration_s"] == 0.0
    # without a shared store (or with dedupe off) every program runs
    alone = score_shards(
        make_shards(second, 200, "alone"),
        tmp_path / "alone",
        "humaneval",
        ("base",),
        SandboxConfig(),
        None,
        1,
        "alone",
        progress=False,
    )
    assert [r["reused_from"] for r in alone.results.to_pylist()] == [None, None, None]
    assert [r["status"] for r in alone.results.to_pylist()] == [r["status"] for r in rows]


def test_a_later_run_takes_canonical_runtimes_from_the_cache(tmp_path, ray_local):
    """A run keeps the canonical runtimes it measured; the next run on the same dataset and sandbox
    settings takes them from there instead of running the canonical solutions again."""
    from ray_jobs.config import ScoreConfig
    from ray_jobs.scoring import canonical_runtimes

    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/2", "completion": RIGHT}])

    def canonical_runtime(out: str, sandbox: SandboxConfig) -> float:
        config = ScoreConfig(
            samples=samples,
            output_dir=tmp_path / out,
            allow_missing_tasks=True,
            k=[1],
            workers=1,
            cache_dir=tmp_path / "cache",
            sandbox=sandbox,
        )
        score.run(config, progress=False)
        results = sorted((tmp_path / out / "results").glob("*.parquet"))
        (row,) = schemas.read_tables(results, schemas.RESULTS).to_pylist()
        assert row["passed"]
        return row["canonical_runtime_s"]

    first = canonical_runtime("first", SandboxConfig())
    path = canonical_runtimes.cache_file(tmp_path / "cache", load_dataset("humaneval"), SandboxConfig())
    assert canonical_runtimes.load(path) == {("HumanEval/2", "base"): first}
    canonical_runtimes.save(path, {("HumanEval/2", "base"): 123.0})  # what a real run could not measure
    assert canonical_runtime("second", SandboxConfig()) == 123.0
    assert canonical_runtime("other-sandbox", SandboxConfig(timeout_s=4.0)) not in (None, 123.0)
