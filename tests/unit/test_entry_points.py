"""Every command-line entry point keeps one contract: bad input exits 2 with one line naming the
problem (never a traceback), and an interruption exits 130."""

import subprocess
import sys
from pathlib import Path

import pytest

from ray_jobs import cli

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT)},
    )


BAD_INPUT = [
    (("ray_jobs.evaluate", "--output-dir", "o", "--k", "1,x"), "--k takes comma-separated integers"),
    (("ray_jobs.evaluate", "--num-samples", "2"), "--output-dir is required"),
    (("ray_jobs.evaluate", "--output-dir", "o", "--device", "tpu"), "invalid choice: 'tpu'"),
    (("ray_jobs.score", "--samples", "s.jsonl", "--output-dir", "o", "--k", "1,x"), "--k takes comma-separated"),
    (("ray_jobs.score", "--output-dir", "o"), "--samples is required"),
    (("ray_jobs.score", "--samples", "missing.jsonl", "--output-dir", "o"), "missing.jsonl"),
    (("ray_jobs.sweep", "missing.yaml"), "config file not found: missing.yaml"),
    (("ray_jobs.report", "not-a-run"), "not-a-run"),
    (("ray_jobs.demo", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
    (("serve_app.serve", "--replicas", "0"), "serving.replicas: Input should be greater than or equal to 1"),
    (("serve_app.serve", "--port", "http"), "argument --port: invalid int value: 'http'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(a[:2]) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(tmp_path, argv, message):
    proc = _run(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_interruption_exits_130(capsys):
    def job():
        raise KeyboardInterrupt

    assert cli.run_command(job) == cli.INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
