"""What the typed serving config turns into for vLLM and Ray Serve LLM (no engine started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ray_jobs.config import ConfigError, EvalConfig, ModelConfig, ServingConfig, build
from serve_app.app import build_llm_config, engine_kwargs

REPO = Path(__file__).resolve().parents[2]


def served(**extra) -> ServingConfig:
    """Serving as a run starts it: max_model_len fitted to the model by then."""
    return ServingConfig(max_model_len=2048, **extra)


@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize("enabled", [True, False])
def test_engine_metrics_switch_both_ray_and_vllm_stats(device, enabled):
    llm_config = build_llm_config(
        ModelConfig(), served(engine_metrics=enabled), device, max_ongoing_requests=8, job_env={}
    )
    assert llm_config.log_engine_metrics is enabled
    # Ray rejects log_engine_metrics with disable_log_stats; off must also stop the engine core's stats
    assert llm_config.engine_kwargs.get("disable_log_stats", False) is not enabled


def test_cpu_engine_arguments_avoid_the_known_cpu_failures():
    kwargs = engine_kwargs(ModelConfig(), served(), "cpu")
    assert kwargs["gpu_memory_utilization"] == 0.1  # host RAM share; 0.9 refuses to start
    assert kwargs["max_num_batched_tokens"] >= 16384  # no chunked seeded prefill
    assert kwargs["enforce_eager"] is True
    gpu = engine_kwargs(ModelConfig(), served(), "gpu")
    assert gpu["gpu_memory_utilization"] == 0.9 and "enforce_eager" not in gpu


def test_user_engine_kwargs_win():
    serving = served(engine_kwargs={"kv_cache_dtype": "fp8", "max_num_seqs": 64})
    kwargs = engine_kwargs(ModelConfig(), serving, "gpu")
    assert kwargs["kv_cache_dtype"] == "fp8" and kwargs["max_num_seqs"] == 64


def test_stats_off_with_metrics_on_is_a_config_error_naming_the_fix(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("serving:\n  engine_kwargs: {disable_log_stats: true}\n")
    with pytest.raises(ConfigError, match=r"serving.*disable_log_stats.*--no-engine-metrics"):
        build(EvalConfig, config_file, {"output_dir": tmp_path / "out"})
    fixed = build(EvalConfig, config_file, {"output_dir": tmp_path / "out", "serving": {"engine_metrics": False}})
    serving = fixed.serving.model_copy(update={"max_model_len": 2048})
    assert build_llm_config(fixed.model, serving, "cpu", 8, {}).engine_kwargs["disable_log_stats"] is True


def test_engine_niceness_reaches_the_replicas_runtime_env(tmp_path):
    llm_config = build_llm_config(ModelConfig(), served(engine_niceness=5), "gpu", max_ongoing_requests=8, job_env={})
    assert llm_config.runtime_env["env_vars"]["RAY_worker_niceness"] == "5"
    # lowering niceness below the raylet's would need privileges the replicas do not have
    with pytest.raises(ConfigError, match=r"serving\.engine_niceness"):
        build(EvalConfig, None, {"output_dir": tmp_path / "out", "serving": {"engine_niceness": -5}})


def test_replicas_keep_the_jobs_env_vars_beside_the_niceness(tmp_path):
    """`ray job submit --runtime-env-json '{"env_vars": {"HF_TOKEN": ...}}'` must still reach the
    replicas: Ray Serve LLM would replace the job's env_vars with the LLMConfig's."""
    script = tmp_path / "options.py"
    script.write_text(
        textwrap.dedent("""
        import json, ray
        ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"HF_TOKEN": "secret", "HF_HOME": "/models"}})
        from ray_jobs.config import ModelConfig, ServingConfig
        from serve_app.app import build_llm_config, job_env_vars
        from serve_app.tagged_server import TaggedLLMServer
        config = build_llm_config(ModelConfig(), ServingConfig(max_model_len=2048, engine_niceness=3), "cpu", 8,
                                  job_env_vars())
        options = TaggedLLMServer.get_deployment_options(config)
        print("ENV " + json.dumps(options["ray_actor_options"]["runtime_env"]["env_vars"]))
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("ENV ")]
    assert lines, out.stderr[-3000:]
    assert json.loads(lines[-1][4:]) == {"HF_TOKEN": "secret", "HF_HOME": "/models", "RAY_worker_niceness": "3"}
