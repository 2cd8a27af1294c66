"""The Ray Serve app: N vLLM replicas through ray.serve.llm, built from the typed config.

Lifecycle rules learned the hard way: serve.run has no timeout (a replica waiting for a GPU that
never comes hangs forever), Serve apps are detached and outlive the driver, and serve.shutdown()
would take down other people's apps on a shared cluster. So: a unique app name, our own deadline
with a message that says what is missing, and delete-in-finally unless asked to keep serving.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from serve_app.config import ModelConfig, ServingConfig
from serve_app.failures import ServingError, deploy_failure

log = logging.getLogger(__name__)


class ReplicaBar(Protocol):
    """What start-up reports to: the caller's progress bar (the job's console.Progress, whose
    updates are also the watchdog's beats)."""

    done: int

    def update(self, count: int) -> None: ...


ReplicaBarFactory = Callable[[int], AbstractContextManager[ReplicaBar]]


class _NoBar:
    done = 0

    def update(self, count: int) -> None:
        self.done += count


def no_bar(replicas: int) -> AbstractContextManager[ReplicaBar]:
    return contextlib.nullcontext(_NoBar())


def resolve_device(serving: ServingConfig) -> str:
    """auto: the GPU where the cluster has one, CPU vLLM otherwise."""
    if serving.device != "auto":
        return serving.device
    import ray

    return "gpu" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"


def engine_kwargs(model: ModelConfig, serving: ServingConfig, device: str) -> dict:
    if serving.max_model_len is None:
        raise ValueError(
            "serving.max_model_len is fitted to the model before replicas start (ray_jobs.generation.preflight)"
        )
    kwargs = {
        "max_model_len": serving.max_model_len,
        "max_num_seqs": serving.max_num_seqs,
        "tensor_parallel_size": serving.tensor_parallel_size,
        "dtype": model.dtype,
        "enable_prefix_caching": serving.enable_prefix_caching,
        "trust_remote_code": model.trust_remote_code,
        # On CPU this is the share of host RAM for the KV cache; the GPU default (0.9) refuses to start.
        "gpu_memory_utilization": serving.gpu_memory_utilization or (0.1 if device == "cpu" else 0.9),
    }
    if serving.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = serving.max_num_batched_tokens
    elif device == "cpu":
        # Seeded n>1 requests whose prefill gets chunked kill the CPU engine; a wide budget avoids it.
        kwargs["max_num_batched_tokens"] = max(serving.max_model_len, 16384)
    if device == "cpu":
        kwargs["enforce_eager"] = True  # skips torch.compile warm-up: minutes of start-up on small CPUs
    if model.quantization:
        kwargs["quantization"] = model.quantization
    if not serving.engine_metrics:
        kwargs["disable_log_stats"] = True  # the engine core then skips its per-step stats too
    return {**kwargs, **serving.engine_kwargs}


def job_env_vars() -> dict[str, str]:
    """The env_vars of this job's runtime_env (HF_TOKEN, HF_HOME, ...); none outside Ray."""
    import ray

    return (ray.get_runtime_context().runtime_env.get("env_vars") or {}) if ray.is_initialized() else {}


def replica_env_vars(serving: ServingConfig, inherited: dict[str, str]) -> dict[str, str]:
    """The job's runtime_env env_vars (HF_TOKEN, HF_HOME, ...) plus the engines' niceness.

    Ray Serve LLM replaces the job's env_vars with the LLMConfig's instead of merging them, and the
    replicas are the Serve controller's children, not the job's: so the job's are copied here.
    RAY_worker_niceness is read by the replica's Ray worker as it starts; raising its niceness from
    the raylet's 0 needs no privileges, and the engine processes it spawns inherit it.
    """
    return {**inherited, "RAY_worker_niceness": str(serving.engine_niceness)}


def import_serving_stack() -> None:
    """Import Ray Serve LLM and vLLM now. Call it on the main thread before the job starts any
    thread: importing vLLM runs logging.config.dictConfig, which holds logging's module lock while
    it takes every handler's lock, and a thread inside a handler's emit that needs the module lock
    (Ray Data's SessionFileHandler creates its file handler so) then deadlocks with it, silently
    and forever (a start-up hang seen in about one run in ten). Later imports are no-ops."""
    import ray.serve.llm  # noqa: F401

    import serve_app.tagged_server  # noqa: F401


def build_llm_config(
    model: ModelConfig, serving: ServingConfig, device: str, max_ongoing_requests: int, job_env: dict[str, str]
):
    from ray.serve.llm import LLMConfig

    options = {
        "model_loading_config": {"model_id": model.model_id, "model_source": model.model},
        "engine_kwargs": engine_kwargs(model, serving, device),
        "deployment_config": {"num_replicas": serving.replicas, "max_ongoing_requests": max_ongoing_requests},
        "log_engine_metrics": serving.engine_metrics,
        "runtime_env": {"env_vars": replica_env_vars(serving, job_env)},
    }
    if device == "cpu":
        options["accelerator_config"] = {"kind": "cpu"}
    elif serving.accelerator_type:
        options["accelerator_type"] = serving.accelerator_type
    return LLMConfig(**options)


def required_resources(serving: ServingConfig, device: str) -> dict[str, float]:
    key = "GPU" if device == "gpu" else "CPU"
    return {key: float(serving.replica_cpus)}


@dataclass
class ServeApp:
    app_name: str
    deployment_name: str


def _deployment_name(app_name: str) -> str:
    from ray import serve

    status = serve.status().applications[app_name]
    names = list(status.deployments)
    if len(names) != 1:
        raise ServingError(f"Serve app {app_name!r} has deployments {names}; expected one LLM deployment")
    return names[0]


def _running_replicas(app) -> int:
    return sum(
        count
        for d in app.deployments.values()
        for state, count in d.replica_states.items()
        if str(state).endswith("RUNNING")
    )


def wait_until_running(
    app_name: str, deadline_s: float, needs: dict[str, float], replicas: int, bar: ReplicaBarFactory = no_bar
) -> None:
    import ray
    from ray import serve

    end = time.monotonic() + deadline_s
    last = None
    with bar(replicas) as progress:
        while time.monotonic() < end:
            app = serve.status().applications.get(app_name)
            state = str(app.status) if app else "NOT_STARTED"
            if state != last:
                log.info("Serve app %s: %s", app_name, state)
                last = state
            running = min(replicas, _running_replicas(app)) if app is not None else progress.done
            progress.update(running - progress.done)  # 0 too: alive, and within its own deadline
            if state.endswith("RUNNING"):
                return
            if state.endswith(("DEPLOY_FAILED", "UNHEALTHY")):
                raise ServingError(deploy_failure(app_name, app))
            time.sleep(2.0)
    total = ray.cluster_resources()
    have = {k: total.get(k, 0.0) for k in needs}
    shortage = ", ".join(f"needs {v:g} {k}, cluster has {have[k]:g}" for k, v in needs.items() if have[k] < v)
    raise ServingError(
        f"Serve app {app_name!r} was not RUNNING after {deadline_s:.0f} s"
        + (
            f": {shortage}"
            if shortage
            else " (replicas still starting, or resources held by other jobs; see `ray status`)"
        )
    )


def delete_app(app_name: str, deadline_s: float = 120.0) -> bool:
    """Delete our app without hanging the job: serve.delete's blocking wait has no timeout."""
    from ray import serve

    with contextlib.suppress(Exception):
        serve.delete(app_name, _blocking=False)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if app_name not in serve.status().applications:
                return True
        time.sleep(1.0)
    log.warning("Serve app %s is still shutting down after %.0f s; check `serve status`", app_name, deadline_s)
    return False


@contextlib.contextmanager
def serving(
    model: ModelConfig, config: ServingConfig, max_ongoing_requests: int, bar: ReplicaBarFactory = no_bar
) -> Iterator[ServeApp]:
    """Attach to `config.app_name` if set, else start a uniquely named app; delete ours afterwards
    unless keep_serving. `bar` shows the replicas coming up."""
    from ray import serve

    if config.app_name:
        apps = serve.status().applications
        if config.app_name not in apps:
            raise ServingError(f"no Serve app named {config.app_name!r} is running (running: {sorted(apps)})")
        yield ServeApp(config.app_name, _deployment_name(config.app_name))
        return
    device = resolve_device(config)
    llm_config = build_llm_config(model, config, device, max_ongoing_requests, job_env_vars())
    from ray.serve.llm import build_llm_deployment

    from serve_app.tagged_server import TaggedLLMServer

    app_name = f"humaneval-{model.model_id}-{uuid.uuid4().hex[:8]}".replace("/", "-")
    try:
        # serve.run waits for RUNNING without any timeout; the private non-blocking variant lets
        # wait_until_running apply a deadline and explain what is missing.
        deployment = build_llm_deployment(llm_config, deployment_cls=TaggedLLMServer)
        # The job talks to replicas through handles only: where this call starts Serve, no HTTP
        # proxy is started (it would take CPU from CPU replicas). A running Serve keeps its own.
        serve.start(proxy_location="Disabled")
        serve._run(deployment, name=app_name, route_prefix=None, _blocking=False)
        wait_until_running(app_name, config.startup_timeout_s, required_resources(config, device), config.replicas, bar)
        app = ServeApp(app_name, _deployment_name(app_name))
        log.info("serving %s on %d %s replica(s) as app %s", model.model, config.replicas, device, app_name)
        yield app
    finally:
        if config.keep_serving:
            log.warning(
                "keeping Serve app %s running (--keep-serving); delete it with serve.delete(%r)", app_name, app_name
            )
        else:
            delete_app(app_name)
