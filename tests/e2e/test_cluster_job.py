"""`ray job submit` against a local `ray start --head`: a small evaluation runs to SUCCEEDED.

Ray 2.60 turns token authentication on for `ray start --head`; the client needs
RAY_AUTH_MODE=token and the cluster's token (here ~/.ray/auth_token, shared on this machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ray_jobs.tiny_model import build

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def head_node(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="rhe-", dir="/tmp")  # Ray's unix sockets need a short path
    log = (tmp_path / "ray-start.log").open("w")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    port, dashboard, agent = _free_port(), _free_port(), _free_port()
    # --block keeps the cluster's lifetime tied to this process group; `ray stop` would also stop
    # every other Ray on the machine (the test session's own). The job agent gets a port of its
    # own: the session's Ray already holds the default one, and a job agent that cannot listen
    # answers every submission with "No available agent".
    proc = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            "--num-cpus=4",
            f"--dashboard-agent-listen-port={agent}",
            "--include-dashboard=true",
            f"--temp-dir={temp_dir}",
            "--block",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = subprocess.run(["ray", "job", "list", "--address", address], env=env, capture_output=True)
        if probe.returncode == 0:
            break
        time.sleep(2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ray start --head did not come up: " + (tmp_path / "ray-start.log").read_text()[-2000:])
    yield address, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:  # a throwaway cluster: its graceful stop (~30 s here) buys nothing, its temp dir goes too
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_an_evaluation_to_succeeded(head_node, tmp_path):
    address, env = head_node
    model = build(tmp_path / "tiny")
    out = tmp_path / "out"
    entrypoint = (
        f"{sys.executable} -m ray_jobs.evaluate --model {model} --output-dir {out} --device cpu "
        f"--replicas 1 --limit 2 --num-samples 2 --max-tokens 16 --k 1"
    )
    for _ in range(60):  # the dashboard answers before its job agent is ready ("No available agent")
        submit = subprocess.run(
            [
                "ray",
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                str(REPO),
                "--no-wait",
                "--",
                *entrypoint.split(),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if submit.returncode == 0 or "No available agent" not in submit.stderr:
            break
        time.sleep(5)
    assert submit.returncode == 0, submit.stderr[-2000:]
    job_id = next(w for w in submit.stdout.split() if w.strip("'").startswith("raysubmit_")).strip("'")
    status = ""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["ray", "job", "status", "--address", address, job_id], env=env, capture_output=True, text=True
        )
        # the CLI logs "Job '...' succeeded" (or failed / was stopped) to stderr
        status = (probe.stdout + probe.stderr).lower()
        if any(s in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(5)
    logs = subprocess.run(
        ["ray", "job", "logs", "--address", address, job_id], env=env, capture_output=True, text=True
    ).stdout
    assert "succeeded" in status, logs[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generation"]["samples"] == 4 and sum(summary["status_counts"]["base"].values()) == 4
    # served with the context the run needs, fitted to the model's own 4,096 tokens
    assert summary["model_fit"]["context_limit"] == 4096
    assert summary["model_fit"]["max_model_len"] == summary["model_fit"]["longest_prompt_tokens"] + 16
    # the job's log is its console: progress as lines (not a terminal), the result, no Ray or vLLM logs
    assert "generation: 4/4 samples (100%) in " in logs and "scoring: 4/4 samples (100%) in " in logs, logs[-3000:]
    assert "pass@1" in logs and f"report:  {out / 'report.html'}" in logs and "Traceback" not in logs
    full_log = (out / "logs" / "evaluate.log").read_text()
    assert "Deleting app" in full_log or "deleted" in full_log.lower()  # the job removed its Serve app

    # the dashboard's task list names each scoring call after the results file it wrote
    listed = subprocess.run(
        ["ray", "list", "tasks", "--address", address, "--limit", "10000", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    named = {t["name"].split()[1] for t in json.loads(listed.stdout) if t["name"].startswith("score shard-")}
    assert named == {p.stem for p in (out / "results").glob("shard-*.parquet")}
