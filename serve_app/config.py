"""What to serve and how: the model and its replicas. The job's config (ray_jobs.config) embeds
both; the Serve app is built from them alone."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from contracts import StrictModel


class ModelConfig(StrictModel):
    model: str = Field("Qwen/Qwen3-0.6B", description="Hugging Face id or local path")
    served_name: str | None = Field(None, description="model id on the endpoint; default: the model's last path part")
    dtype: str = "auto"
    quantization: str | None = Field(None, description="vLLM quantization, e.g. fp8, awq")
    trust_remote_code: bool = False

    @property
    def model_id(self) -> str:
        return self.served_name or Path(self.model.rstrip("/")).name


class ServingConfig(StrictModel):
    device: Literal["auto", "gpu", "cpu"] = "auto"
    replicas: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    accelerator_type: str | None = Field(None, description="e.g. H100; GPU only")
    max_model_len: int | None = Field(
        None,
        ge=64,
        description="context served; default: the longest prompt plus max_tokens, within the model's own limit",
    )
    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=64)
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="default 0.9 on GPU, 0.1 (of host RAM) on CPU"
    )
    enable_prefix_caching: bool = True
    engine_metrics: bool = Field(True, description="vLLM per-step stats in Ray's Prometheus endpoint (Grafana)")
    engine_niceness: int = Field(
        0,
        ge=0,
        le=19,
        description="CPU niceness of the replicas and their vLLM engine processes. Ray starts workers at 15, "
        "below its own daemons and the driver; the engines are the job's hot path",
    )
    engine_kwargs: dict = Field(default_factory=dict, description="extra vLLM engine arguments")
    startup_timeout_s: float = Field(1200.0, gt=0)
    app_name: str | None = Field(None, description="attach to this running Serve app instead of starting one")
    keep_serving: bool = Field(False, description="leave the app running after the job, for reuse")

    @property
    def replica_cpus(self) -> int:
        """CPUs (or GPUs) the replicas hold for their whole life."""
        return self.replicas * self.tensor_parallel_size

    @model_validator(mode="after")
    def _metrics_need_stats(self) -> ServingConfig:
        # Ray Serve LLM refuses the pair deep inside replica start-up; say it here, in config terms
        if self.engine_metrics and self.engine_kwargs.get("disable_log_stats"):
            raise ValueError(
                "engine_kwargs.disable_log_stats turns off the stats that engine metrics export; "
                "set serving.engine_metrics: false (--no-engine-metrics) instead"
            )
        return self
