"""Joining or starting Ray: the embedded default is a private local Ray, never a stale cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """SIGTERM (`kill`, `ray job stop`) ends the job as Ctrl-C does, running the finally blocks
    that delete Serve apps. ray.init installs a handler of its own that aborts the process, so
    this is called again after it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def resolve_address(address: str | None) -> str:
    """--address, else RAY_ADDRESS (set by `ray job submit`), else a new in-process local Ray.
    A bare ray.init() would join whatever cluster this machine last recorded, and hang if it died."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """num_cpus applies only to a new local Ray (logical CPUs to declare)."""
    import ray

    if ray.is_initialized():
        yield
        return
    target = resolve_address(address)
    log.info("connecting to Ray at %s", target)
    kwargs = {"num_cpus": num_cpus} if target == "local" and num_cpus else {}
    ray.init(address=target, logging_level=logging.WARNING, log_to_driver=True, **kwargs)
    stop_like_ctrl_c()
    try:
        yield
    finally:
        ray.shutdown()


def local_cpus(address: str | None, replica_cpus: int) -> int | None:
    """Logical CPUs a new local Ray declares: the machine's, plus those CPU vLLM replicas (and an
    HTTP ingress) hold for their whole life, so that sandbox workers still get scheduled. None
    where the job joins a cluster, which has its own resources."""
    if resolve_address(address) != "local":
        return None
    return (os.cpu_count() or 2) + replica_cpus


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> float:
    import ray

    return ray.cluster_resources().get("GPU", 0.0)
