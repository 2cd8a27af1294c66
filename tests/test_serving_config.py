"""What the typed serving config turns into for vLLM and Ray Serve LLM (no engine started)."""

from __future__ import annotations

import pytest

from ray_jobs.config import ConfigError, EvalConfig, ModelConfig, ServingConfig, build
from serve_app.app import build_llm_config, engine_kwargs


@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize("enabled", [True, False])
def test_engine_metrics_switch_both_ray_and_vllm_stats(device, enabled):
    llm_config = build_llm_config(ModelConfig(), ServingConfig(engine_metrics=enabled), device, max_ongoing_requests=8)
    assert llm_config.log_engine_metrics is enabled
    # Ray rejects log_engine_metrics with disable_log_stats; off must also stop the engine core's stats
    assert llm_config.engine_kwargs.get("disable_log_stats", False) is not enabled


def test_cpu_engine_arguments_avoid_the_known_cpu_failures():
    kwargs = engine_kwargs(ModelConfig(), ServingConfig(max_model_len=2048), "cpu")
    assert kwargs["gpu_memory_utilization"] == 0.1  # host RAM share; 0.9 refuses to start
    assert kwargs["max_num_batched_tokens"] >= 16384  # no chunked seeded prefill
    assert kwargs["enforce_eager"] is True
    gpu = engine_kwargs(ModelConfig(), ServingConfig(), "gpu")
    assert gpu["gpu_memory_utilization"] == 0.9 and "enforce_eager" not in gpu


def test_user_engine_kwargs_win():
    serving = ServingConfig(engine_kwargs={"kv_cache_dtype": "fp8", "max_num_seqs": 64})
    kwargs = engine_kwargs(ModelConfig(), serving, "gpu")
    assert kwargs["kv_cache_dtype"] == "fp8" and kwargs["max_num_seqs"] == 64


def test_stats_off_with_metrics_on_is_a_config_error_naming_the_fix(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("serving:\n  engine_kwargs: {disable_log_stats: true}\n")
    with pytest.raises(ConfigError, match=r"serving.*disable_log_stats.*--no-engine-metrics"):
        build(EvalConfig, config_file, {"output_dir": tmp_path / "out"})
    fixed = build(EvalConfig, config_file, {"output_dir": tmp_path / "out", "serving": {"engine_metrics": False}})
    assert build_llm_config(fixed.model, fixed.serving, "cpu", 8).engine_kwargs["disable_log_stats"] is True


def test_engine_niceness_reaches_the_replicas_runtime_env(tmp_path):
    llm_config = build_llm_config(ModelConfig(), ServingConfig(engine_niceness=5), "gpu", max_ongoing_requests=8)
    assert llm_config.runtime_env["env_vars"]["RAY_worker_niceness"] == "5"
    # lowering niceness below the raylet's would need privileges the replicas do not have
    with pytest.raises(ConfigError, match=r"serving\.engine_niceness"):
        build(EvalConfig, None, {"output_dir": tmp_path / "out", "serving": {"engine_niceness": -5}})
