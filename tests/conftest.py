from __future__ import annotations

import faulthandler
import os
import sys
import threading
from pathlib import Path

import pytest

LANES = ("unit", "sandbox", "integration", "e2e")  # tests/<lane>/; pyproject's markers say what each holds


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Every test carries its folder's lane marker, so `-m` selects lanes (`make test-fast`)."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts if item.path.is_relative_to(root) else ()
        if len(parts) < 2 or parts[0] not in LANES:
            raise pytest.UsageError(f"{item.nodeid}: tests belong in one of tests/{{{','.join(LANES)}}}/")
        item.add_marker(parts[0])


BACKSTOP_S = 60  # past a test's timeout


def _timeout_s(item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    else:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    return float(value or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """pytest-timeout's SIGALRM fails a hung test and the session goes on, but it cannot break a
    wait inside C++ (a ray.get on a task that never ends raises only once the task does): should a
    test still run BACKSTOP_S after its timeout, print every thread's stack and end the run, as
    pytest-timeout's thread method would, rather than hang CI."""
    timeout = _timeout_s(item)
    backstop = None
    if timeout > 0:

        def bail():
            capture = item.config.pluginmanager.getplugin("capturemanager")
            if capture:
                capture.suspend_global_capture(in_=True)
            sys.stderr.write(
                f"\n{item.nodeid}: still running {BACKSTOP_S} s past its {timeout:.0f} s timeout "
                "(the timeout's signal did not get through); every thread's stack:\n"
            )
            faulthandler.dump_traceback(file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)

        backstop = threading.Timer(timeout + BACKSTOP_S, bail)
        backstop.daemon = True
        backstop.start()
    try:
        yield
    finally:
        if backstop:
            backstop.cancel()


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
        ray.init(
            address="local",
            num_cpus=(os.cpu_count() or 2) + 3,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen3 with a 4,096-token context (ray_jobs.tiny_model) that CPU vLLM serves
    with no downloads."""
    from ray_jobs.tiny_model import build

    return build(tmp_path_factory.mktemp("model") / "tiny-qwen3", shape="qwen3")


@pytest.fixture(scope="session")
def model_shapes(tmp_path_factory, tiny_model):
    """Other shapes a user brings: a Llama base model without chat template and a 1,024-token
    context, and a StarCoder-architecture (GPTBigCode) model; built on first use."""
    from ray_jobs.tiny_model import build

    built = {"qwen3": tiny_model}

    def get(shape: str) -> Path:
        if shape not in built:
            built[shape] = build(tmp_path_factory.mktemp("model") / shape, shape=shape)
        return built[shape]

    return get


@pytest.fixture(scope="session")
def mbpp_oracles() -> tuple[Path, dict]:
    """(cache dir, oracles) of MBPP+: computed once per machine (about a minute on 2 cores) in
    the default cache, as the full HumanEval+ test's, and shared by every MBPP test."""
    from ray_jobs.config import ScoreConfig
    from ray_jobs.tasks.groundtruth import load_oracles

    cache_dir = ScoreConfig.model_fields["cache_dir"].default
    return cache_dir, load_oracles("mbpp_plus", cache_dir, workers=os.cpu_count() or 2)
