"""Ray Data drives requests into the Serve deployment; the driver writes generation shards.

Why not vLLMEngineProcessorConfig: it keeps only the first of n outputs. Why not
ServeDeploymentProcessorConfig: its error rows bypass postprocessing with another schema. This
UDF makes the same DeploymentHandle calls, keeps all n choices, and turns every failure
(ErrorResponse, exception, timeout) into per-sample error rows that the driver re-asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass

import pyarrow as pa
import ray

from ray_jobs.config import EvalConfig
from ray_jobs.console import Progress
from ray_jobs.generation.planning import RequestRow, generation_rows, request_body
from ray_jobs.storage import schemas
from serve_app.app import import_serving_stack
from serve_app.failures import root_cause

# a generation row on its way to the driver: which request it answers, and whether that answer is
# final (an error the request would only repeat, such as a prompt too long) or may be asked again
_KEYED = schemas.GENERATIONS.append(pa.field("request_key", pa.string(), nullable=False)).append(
    pa.field("request_final", pa.bool_(), nullable=False)
)

log = logging.getLogger(__name__)


class _PassThrough:
    def __call__(self, batch):
        return batch


def _warm_up() -> None:
    try:
        # from_items, as generate's own datasets: no read task, so no CPU to wait for. range(1)'s
        # read task needs one, and a resumed run's scoring workers may hold every CPU already
        # (the resumed shards are scored first): the warm-up then sat out its whole 120 s join.
        ray.data.from_items([{"warm": 0}]).map_batches(_PassThrough, concurrency=1, num_cpus=0).materialize()
    except Exception as exc:  # only an optimisation: generation starts them itself if need be
        log.info("Ray Data warm-up failed: %s", exc)


def warm_up_in_background() -> threading.Thread:
    """Start Ray Data's executor and helper actors while the replicas load, not after: seconds of
    process start-up off the generation's critical path. The serving stack is imported first:
    its import reconfigures logging, which must not race a thread that logs (import_serving_stack)."""
    import_serving_stack()
    thread = threading.Thread(target=_warm_up, name="ray-data-warm-up", daemon=True)
    thread.start()
    return thread


def _error_text(payload: dict) -> tuple[str, bool]:
    """(message, retryable) of an ErrorResponse; 4xx errors (e.g. prompt too long) are final."""
    error = payload.get("error", payload)
    if isinstance(error, dict):
        code = error.get("code")
        message = f"{error.get('type', 'Error')}: {error.get('message', error)}"
    else:
        code, message = payload.get("code"), str(error)
    final = isinstance(code, int) and 400 <= code < 500
    return message, not final


class GenerateUDF:
    """One per Ray Data actor: holds a DeploymentHandle; Ray Data runs many calls concurrently."""

    def __init__(self, app_name: str, deployment_name: str, config_json: str, config_id: str):
        from ray import serve

        from ray_jobs.tasks.datasets import load_dataset

        self.cfg = EvalConfig.model_validate_json(config_json)
        self.tasks = load_dataset(self.cfg.dataset).tasks
        self.config_id = config_id
        self.handle = serve.get_deployment_handle(deployment_name, app_name).options(stream=True)

    async def __call__(self, batch: dict):
        rows = [RequestRow(**json.loads(text)) for text in batch["request"].to_pylist()]
        # yield each request as it finishes, so the driver can write shards while others run
        for finished in asyncio.as_completed([self._ask(row) for row in rows]):
            yield pa.Table.from_pylist(await finished, schema=_KEYED)

    async def _ask(self, row: RequestRow) -> list[dict]:
        task = self.tasks[row.task_id]
        method, body = request_body(row, task, self.cfg)
        started, started_at = time.perf_counter(), time.time()
        response, error, retryable = None, None, True
        try:
            # a plain dict: serve_app.tagged_server builds vLLM's request model inside the replica
            stream = getattr(self.handle, method).remote(body)
            payload = await asyncio.wait_for(stream.__anext__(), timeout=self.cfg.generation.request_timeout_s)
            payload = payload.model_dump() if hasattr(payload, "model_dump") else payload
            if payload.get("choices") is None:
                error, retryable = _error_text(payload)
            else:
                response = payload
        except asyncio.TimeoutError:
            error = f"TimeoutError: no response within {self.cfg.generation.request_timeout_s} s"
        except Exception as exc:  # replica died, engine dead, ...: the driver re-asks
            # the replica's own exception, not the Ray frames wrapped around it
            error = root_cause(str(exc)) or f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - started
        replica = (response or {}).get("replica") if response else None
        out = generation_rows(row, task, self.cfg, response, error, latency, replica, self.config_id, started_at)
        return [{**r, "request_key": row.key(), "request_final": not retryable} for r in out]


@dataclass(frozen=True)
class GenerationRun:
    """What the generation stage did (this run's requests; resumed shards sent none)."""

    requests: int
    retried_requests: int  # asked again after an engine error or a timeout
    failed_requests: int  # still failing after every retry: their samples are rows with an error
    wall_s: float


def generate(
    cfg: EvalConfig,
    app_name: str,
    deployment_name: str,
    shards: list[tuple[str, list[RequestRow]]],
    write_shard,
    config_id: str,
    progress: bool = True,
) -> GenerationRun:
    """Run every request of `shards`; `write_shard(key, rows)` is called once per finished shard."""
    owner = {}
    for key, rows in shards:
        for row in rows:
            owner[row.key()] = key
    waiting = {key: {r.key() for r in rows} for key, rows in shards}
    collected: dict[str, list[dict]] = {key: [] for key, _ in shards}
    pending = {r.key(): r for _, rows in shards for r in rows}
    total = sum(r.n for r in pending.values())
    bar = Progress("generation", total, "sample", enabled=progress)
    requests, retried, failed_requests = len(pending), 0, 0
    started = time.perf_counter()
    replicas = max(1, cfg.serving.replicas)
    # The bar above counts samples; Ray Data's own per-operator bars would repeat it in blocks and
    # redraw on the driver, which shares the CPUs with CPU replicas.
    ray.data.DataContext.get_current().enable_progress_bars = False
    for attempt in range(cfg.generation.max_retries + 1):
        if not pending:
            break
        if attempt:
            retried += len(pending)
            time.sleep(min(30.0, 5.0 * attempt))  # give Serve time to replace a dead replica
        # One request per block and per batch, and in_flight_per_replica concurrent calls per
        # actor: a finished request is replaced at once and its rows reach the driver at once.
        # (Batches of many requests run in waves: each waits for its slowest request, which
        # halves the requests in flight when output lengths vary; benchmarks/generation_overhead.py.)
        ds = ray.data.from_items(
            [{"request": json.dumps(asdict(r))} for r in pending.values()], override_num_blocks=len(pending)
        )
        ds = ds.map_batches(
            GenerateUDF,
            fn_constructor_args=(app_name, deployment_name, cfg.model_dump_json(), config_id),
            batch_size=1,
            concurrency=replicas,
            max_concurrency=cfg.generation.in_flight_per_replica,
            num_cpus=0,  # waits on the replicas; must not compete with them for CPUs
            batch_format="pyarrow",
        )
        last_attempt = attempt == cfg.generation.max_retries
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            by_request: dict[str, list[dict]] = {}
            for row in batch.to_pylist():
                by_request.setdefault(row.pop("request_key"), []).append(row)
            for request_key, rows in by_request.items():
                final = rows[0]["request_final"]
                for row in rows:
                    del row["request_final"]
                if request_key not in pending:
                    continue  # reported twice (Ray Data retried its task): counted once already
                failed = rows[0]["error"] is not None
                if failed and not final and not last_attempt:
                    continue  # stays pending: asked again in the next pass
                failed_requests += failed
                pending.pop(request_key, None)
                shard = owner[request_key]
                collected[shard].extend(rows)
                waiting[shard].discard(request_key)
                bar.update(len(rows))
                if not waiting[shard]:
                    write_shard(shard, sorted(collected.pop(shard), key=lambda r: (r["task_id"], r["completion_id"])))
    bar.close()
    return GenerationRun(requests, retried, failed_requests, time.perf_counter() - started)
