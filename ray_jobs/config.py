"""Typed configuration: the single source of truth. YAML files and CLI flags both land here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from contracts import StrictModel, UserError
from ray_jobs.sandbox.config import SandboxConfig
from ray_jobs.tasks.benchmarks import DATASETS, HUMANEVAL_CHAT_TEMPLATE, benchmark
from serve_app.config import ModelConfig, ServingConfig

DatasetName = Literal[DATASETS]  # type: ignore[valid-type]  # the names tasks/benchmarks.py knows, no second list

SCORING_SHARD_SIZE = 200
WATCHDOG_S = 900.0
DEDUPE_DOC = (
    "run each distinct program of a task once and give its verdict to every identical sample; assumes "
    "a program's verdict depends on its text alone (not on the clock, randomness or the machine)"
)
WATCHDOG_DOC = (
    "a stage (serving, generation, scoring, report) without progress for this many seconds fails the "
    "job, with every thread's stack and the running Ray tasks in the log"
)


def _positive_ks(ks: list[int]) -> list[int]:
    if not ks or any(k < 1 for k in ks):
        raise ValueError("k values must be positive integers")
    return sorted(set(ks))


Ks = Annotated[list[int], AfterValidator(_positive_ks)]  # pass@k's k values: sorted, distinct, positive


class ScoreConfig(StrictModel):
    samples: Path
    output_dir: Path
    dataset: DatasetName = "humaneval"
    k: Ks = Field(default_factory=lambda: [1, 10, 100])
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


class ConfigError(UserError, ValueError):
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


class SamplingConfig(StrictModel):
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


class PromptConfig(StrictModel):
    mode: Literal["chat", "completion"] = "chat"
    template: str = Field(
        HUMANEVAL_CHAT_TEMPLATE,
        description="chat message, {prompt} the task's prompt; left unset, the dataset's own (tasks/benchmarks.py)",
    )
    system: str | None = None
    thinking: bool = False
    code_block: Literal["first", "last"] = "first"
    extraction: Literal["auto", "seed"] = Field(
        "auto",
        description="how code is found in a chat response (generation/extract.py): auto reads answer tags, "
        "unfenced code and several blocks; seed keeps the first releases' rules exactly",
    )


class GenerationConfig(StrictModel):
    num_samples: int = Field(1, ge=1, description="n per task")
    chunk_size: int = Field(20, ge=1, description="samples per request (n of one request)")
    request_timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0, description="re-asks for requests that failed (engine death, timeout)")
    in_flight_per_replica: int = Field(32, ge=1, description="requests kept in flight per replica")
    shard_samples: int = Field(200, ge=1, description="samples per generations shard file")


class EvalConfig(StrictModel):
    output_dir: Path
    dataset: DatasetName = "humaneval"
    limit: int | None = Field(None, ge=1, description="first N tasks only")
    k: Ks = Field(default_factory=lambda: [1, 10, 100])
    address: str | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    scoring_workers: int | None = Field(None, ge=1, description="scoring actors; default: one per cluster CPU")
    scoring_shard_size: int = Field(
        SCORING_SHARD_SIZE, ge=1, description="samples per scoring call and per results shard"
    )
    dedupe: bool = Field(True, description=DEDUPE_DOC)
    cache_dir: Path = Field(Path("~/.cache/ray_humaneval").expanduser())
    report: bool = Field(True, description="write report.md/.html/.json into output_dir")
    watchdog_s: float = Field(WATCHDOG_S, gt=0, description=WATCHDOG_DOC)

    @model_validator(mode="after")
    def _dataset_template(self) -> EvalConfig:
        """A template left unset is the dataset's: written in here, so the configuration, its
        generation id, config.yaml and summary.json all hold the one actually used."""
        default = benchmark(self.dataset).chat_template
        if "template" not in self.prompt.model_fields_set and self.prompt.template != default:
            self.prompt = self.prompt.model_copy(update={"template": default})
        return self

    @model_validator(mode="after")
    def _fits_context(self) -> EvalConfig:
        max_tokens, max_model_len = self.sampling.max_tokens, self.serving.max_model_len
        if max_tokens is not None and max_model_len is not None and max_tokens >= max_model_len:
            raise ValueError(
                f"sampling.max_tokens ({max_tokens}) must be below serving.max_model_len "
                f"({max_model_len}), which must also hold the prompt"
            )
        return self

    def fitted_to(self, max_model_len: int, sampling: dict) -> EvalConfig:
        """This configuration with what the preflight chose for the model written in."""
        return self.model_copy(
            update={
                "serving": self.serving.model_copy(update={"max_model_len": max_model_len}),
                "sampling": SamplingConfig.model_validate(sampling),
            }
        )

    def generation_id(self) -> str:
        """What determines the generated text: a rerun with the same id reuses its shards. Needs a
        fitted configuration: the sampling actually used is part of it."""
        if not self.sampling.fitted:
            raise ValueError("generation_id() of a configuration not yet fitted to its model")
        return config_hash(
            self.dataset,
            self.model,
            self.prompt,
            self.sampling.model_dump(),
            self.generation.num_samples,
            self.generation.chunk_size,
        )


class SweepConfig(StrictModel):
    """A sweep file (ray_jobs/sweep.py): EvalConfig fields in `base`, axes in `matrix`, model
    variants served in turn in `models`."""

    output_dir: Path
    base: dict = Field(default_factory=dict, description="EvalConfig fields every configuration shares")
    matrix: dict[str, list] = Field(default_factory=dict, description="dotted EvalConfig path -> the values to sweep")
    models: list[dict] = Field(
        default_factory=list, description="ModelConfig fields of each variant; none: base's model"
    )
