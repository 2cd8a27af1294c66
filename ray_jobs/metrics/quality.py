"""Code quality of extracted completions: ruff violations by rule, radon complexity and
maintainability, lines of code. Each sample is the task prompt plus its completion, as scored.

Measured once per distinct program (at large n many samples are identical), and on a seeded
uniform sample of at most MEASURED_LIMIT distinct programs: the distributions then cost the same
at n=200 as at n=10, where per-sample measurement took longer than scoring (about 4 ms each)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from radon.complexity import cc_visit
from radon.metrics import mi_visit
from radon.raw import analyze

_RUFF_RULES = "E,F,W,C90,B,SIM,PL"
MEASURED_LIMIT = 3000


def radon_metrics(code: str) -> dict:
    """{"complexity": max cyclomatic complexity of a block, "maintainability": MI 0-100, "sloc"}.
    Code that does not parse gets None for all three."""
    try:
        blocks = cc_visit(code)
        return {
            "complexity": max((b.complexity for b in blocks), default=1),
            "maintainability": float(mi_visit(code, multi=True)),
            "sloc": analyze(code).sloc,
        }
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return {"complexity": None, "maintainability": None, "sloc": None}


def ruff_violations(codes: list[str]) -> tuple[list[int], Counter]:
    """(violations per sample, violations by rule) from one `ruff check` over all samples."""
    if not codes:
        return [], Counter()
    ruff = Path(sys.executable).with_name("ruff")
    with tempfile.TemporaryDirectory() as tmp:
        for i, code in enumerate(codes):
            (Path(tmp) / f"s{i}.py").write_text(code)
        proc = subprocess.run(
            [
                str(ruff) if ruff.exists() else "ruff",
                "check",
                "--no-cache",
                "--isolated",
                "--exit-zero",
                "--output-format",
                "json",
                "--select",
                _RUFF_RULES,
                "--target-version",
                "py311",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    per_sample = [0] * len(codes)
    by_rule: Counter = Counter()
    for item in json.loads(proc.stdout or "[]"):
        per_sample[int(Path(item["filename"]).stem[1:])] += 1
        by_rule[item["code"] or "syntax"] += 1
    return per_sample, by_rule


def quality_metrics(codes: list[str]) -> dict:
    """Distributions over distinct programs (`measured` of them, out of `distinct`)."""
    distinct = list(dict.fromkeys(codes))
    measured = random.Random(0).sample(distinct, MEASURED_LIMIT) if len(distinct) > MEASURED_LIMIT else distinct
    per_sample, by_rule = ruff_violations(measured)
    radon_rows = [radon_metrics(code) for code in measured]

    def values(key):
        return [r[key] for r in radon_rows if r[key] is not None]

    return {
        "samples": len(codes),
        "distinct": len(distinct),
        "measured": len(measured),
        "ruff_violations_per_sample": per_sample,
        "ruff_by_rule": dict(by_rule.most_common()),
        "complexity": values("complexity"),
        "maintainability": values("maintainability"),
        "sloc": values("sloc"),
    }
