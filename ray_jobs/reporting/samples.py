"""What the sample browser shows: per task, a few samples of each outcome, and one that passed.

Looking at failing samples is the first thing people do after reading pass@k; at n=200 a task
has hundreds, so each outcome is represented by its first few (by completion id, so the choice is
stable across reruns), with long texts cut to TEXT_CHARS.
"""

from __future__ import annotations

from collections import defaultdict

from ray_jobs.generation.extract import thinking_part
from ray_jobs.metrics.analysis import Run

PER_OUTCOME = 2
TEXT_CHARS = 6000
OUTCOME_ORDER = (
    "failed",
    "error",
    "timeout",
    "syntax_error",
    "truncated",
    "out_of_memory",
    "crashed",
    "empty",
    "generation_error",
    "passed",
)


def _cut(text: str | None) -> str:
    if not text or len(text) <= TEXT_CHARS:
        return text or ""
    return text[:TEXT_CHARS] + f"\n... ({len(text) - TEXT_CHARS:,} more characters)"


def outcome(status: str, finish_reason: str | None) -> str:
    """A sample's outcome in the browser: truncation and generation errors before the verdict
    they cause (a truncated answer usually fails for that reason alone)."""
    if status == "passed":
        return "passed"
    if finish_reason == "error":
        return "generation_error"
    if finish_reason == "length":
        return "truncated"
    return status


def primary_suite(run: Run) -> str:
    return run.suites[-1]


def sample_index(run: Run) -> dict[str, dict[int, dict]]:
    """task -> completion id -> sample (text and per-suite verdicts), for runs with generations."""
    if run.generations is None:
        return {}
    samples: dict[str, dict[int, dict]] = defaultdict(dict)
    for g in run.generations.select(
        [
            "task_id",
            "completion_id",
            "response",
            "completion",
            "extracted_from",
            "finish_reason",
            "completion_tokens",
            "error",
        ]
    ).to_pylist():
        samples[g["task_id"]][g["completion_id"]] = {**g, "verdicts": {}}
    for r in run.results.select(
        ["task_id", "completion_id", "suite", "status", "error_type", "error_message"]
    ).to_pylist():
        sample = samples.get(r["task_id"], {}).get(r["completion_id"])
        if sample is not None:
            sample["verdicts"][r["suite"]] = r
    return samples


def view(sample: dict, suite: str) -> dict:
    """One sample as the page shows it."""
    verdict = sample["verdicts"].get(suite) or {"status": "crashed", "error_type": None, "error_message": None}
    thinking = thinking_part(sample["response"])
    error = " ".join(part for part in (verdict["error_type"], verdict["error_message"]) if part)
    return {
        "completion_id": sample["completion_id"],
        "outcome": outcome(verdict["status"], sample["finish_reason"]),
        "statuses": {s: v["status"] for s, v in sample["verdicts"].items()},
        "error": _cut(error or sample["error"]),
        "code": _cut(sample["completion"]),
        "found": sample["extracted_from"],  # None in runs from before it was recorded
        "thinking": _cut(thinking),
        "answer": _cut(sample["response"][len(thinking) :] if thinking else sample["response"]),
        "tokens": sample["completion_tokens"],
    }


def browser(index: dict[str, dict[int, dict]], suite: str, prompts: dict[str, str]) -> list[dict]:
    """Per task: its prompt, the chosen samples (failing outcomes first) and the outcome counts."""
    tasks = []
    for task_id, by_id in index.items():
        chosen: dict[str, list[dict]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for completion_id in sorted(by_id):
            shown = view(by_id[completion_id], suite)
            counts[shown["outcome"]] += 1
            limit = 1 if shown["outcome"] == "passed" else PER_OUTCOME
            if len(chosen[shown["outcome"]]) < limit:
                chosen[shown["outcome"]].append(shown)
        ordered = [
            s
            for name in sorted(chosen, key=lambda o: OUTCOME_ORDER.index(o) if o in OUTCOME_ORDER else 99)
            for s in chosen[name]
        ]
        tasks.append(
            {
                "task_id": task_id,
                "prompt": prompts.get(task_id, ""),
                "samples": ordered,
                "counts": dict(counts),
                "suite": suite,
            }
        )
    return tasks


def first_sample(index: dict[str, dict[int, dict]], suite: str, task_id: str, want_passed: bool) -> dict | None:
    """The first sample of `task_id` that passed (or failed) `suite`."""
    for _, sample in sorted(index.get(task_id, {}).items()):
        shown = view(sample, suite)
        if (shown["outcome"] == "passed") == want_passed:
            return shown
    return None
