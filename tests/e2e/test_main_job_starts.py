"""The main job, started several times in a row as a user starts it, ends every time: a start-up
hang (the logging deadlock between vLLM's import and Ray Data's warm-up hit about one run in
ten) cannot pass unseen. Each start is a new local Ray, a new CPU vLLM replica, generation,
scoring and the report; the watchdog is set short, so a stuck start fails fast and says where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ray_jobs.metrics.summary import Summary

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # 3 starts, up to 600 s each
STARTS = 3


def test_the_main_job_ends_every_time_it_is_started(tmp_path, tiny_model):
    for start in range(STARTS):
        out = tmp_path / f"start-{start}"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ray_jobs.evaluate",
                "--model",
                str(tiny_model),
                "--output-dir",
                str(out),
                "--device",
                "cpu",
                "--replicas",
                "1",
                "--limit",
                "1",
                "--num-samples",
                "1",
                "--max-tokens",
                "8",
                "--watchdog-s",
                "240",
                "--no-progress",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"start {start}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        summary = Summary.model_validate_json((out / "summary.json").read_text())
        assert summary.samples == 1 and sum(summary.status_counts["base"].values()) == 1
