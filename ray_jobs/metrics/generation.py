"""summary.json's `generation` section: what the generation stage produced and how fast."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pyarrow as pa

from ray_jobs.generation.extract import thinking_part

if TYPE_CHECKING:  # a type only: importing the driver imports Ray
    from ray_jobs.generation.driver import GenerationRun


def generation_metrics(generations: pa.Table, gen_run: GenerationRun, utilisation: dict) -> dict:
    rows = generations.select(
        ["finish_reason", "completion_tokens", "prompt_tokens", "replica", "response", "error"]
    ).to_pylist()
    finish = Counter(r["finish_reason"] for r in rows)
    tokens = [r["completion_tokens"] for r in rows if r["completion_tokens"] is not None]
    thinking = [bool(thinking_part(r["response"])) for r in rows]
    wall = gen_run.wall_s
    return {
        "samples": len(rows),
        "finish_reasons": dict(finish),
        "truncation_rate": finish.get("length", 0) / len(rows) if rows else 0.0,
        "errors": sum(1 for r in rows if r["error"]),
        "completion_tokens_total": sum(tokens),
        "completion_tokens_mean": sum(tokens) / len(tokens) if tokens else None,
        "responses_with_thinking": sum(thinking),
        "tokens_per_s": round(sum(tokens) / wall, 1) if wall and tokens else None,
        "samples_per_s": round(len(rows) / wall, 2) if wall else None,
        "requests": gen_run.requests,
        "retried_requests": gen_run.retried_requests,
        "failed_requests": gen_run.failed_requests,
        "replica_utilisation": utilisation,
    }
