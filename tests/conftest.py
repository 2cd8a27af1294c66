from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def oracle_cache(tmp_path_factory) -> Path:
    """HumanEval+ oracles are cached per machine in ~/.cache; tests of the Mini set use their own."""
    return tmp_path_factory.mktemp("oracles")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting one costs seconds)."""
    import ray

    if not ray.is_initialized():
        # logical CPUs beyond the cores: CPU vLLM replicas hold one each for their whole life
        ray.init(address="local", num_cpus=(os.cpu_count() or 2) + 3, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen3 (ray_jobs.tiny_model) that CPU vLLM serves with no downloads."""
    from ray_jobs.tiny_model import build

    return build(tmp_path_factory.mktemp("model") / "tiny-qwen3")
