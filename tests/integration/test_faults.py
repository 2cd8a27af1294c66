"""Fault injection: a node lost mid-scoring, and a disk that fills up while writing outputs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ray_jobs import score
from tests.integration.test_score_cli import canonical_and_wrong, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def _run(samples: Path, out: Path, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "support" / "fault_scoring_script.py"), str(samples), str(out), mode],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_removing_a_worker_node_mid_scoring_loses_and_doubles_nothing(tmp_path):
    rows = canonical_and_wrong("humaneval") * 2  # 656 samples, 33 shards
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    clean = _run(samples, tmp_path / "clean", "keep")
    faulty = _run(samples, tmp_path / "faulty", "remove")
    assert faulty["removed"], "the node was not removed while scoring ran"
    assert faulty["pass_at_k"] == clean["pass_at_k"] and faulty["status_counts"] == clean["status_counts"]
    keys = []
    for path in (tmp_path / "faulty" / "results").glob("*.parquet"):
        table = pq.read_table(path)
        keys += list(zip(table.column("task_id").to_pylist(), table.column("completion_id").to_pylist()))
    assert len(keys) == len(set(keys)) == 656  # every sample scored exactly once


def test_full_disk_gives_a_clear_error_and_no_corrupt_file(tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)]).returncode != 0:
        pytest.fail("mounting a small tmpfs needs root, which this project's machines and CI have")
    try:
        # extra fields are carried into samples_results.jsonl: 40 x 2 KB cannot fit in 48 KB
        rows = [{**row, "padding": "x" * 2000} for row in canonical_and_wrong("humaneval")[:40]]
        samples = write_jsonl(tmp_path / "s.jsonl", rows)
        code = score.main(
            [
                "--samples",
                str(samples),
                "--output-dir",
                str(mount / "out"),
                "--allow-missing-tasks",
                "--no-progress",
                "--workers",
                "1",
            ]
        )
        assert code == 2 and "No space left on device" in capsys.readouterr().err
        leftovers = [p for p in (mount / "out").rglob("*") if p.is_file()]
        assert not [p for p in leftovers if p.name.endswith(".tmp")]  # temp files cleaned up
        for path in leftovers:
            if path.suffix == ".parquet":
                pq.read_table(path)  # whatever was renamed into place is whole
        # the failed write closed its temp file: a deleted file held open keeps its space in use
        assert [path for path in _open_files() if path.startswith(str(mount))] == []
    finally:
        subprocess.run(["umount", "--lazy", str(mount)])


def _open_files() -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own fd is gone by now
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


def test_a_scoring_call_that_keeps_failing_marks_its_samples_crashed(tmp_path, ray_local):
    """A shard whose scoring call raises every time (here: a task the worker's dataset lacks) is
    retried, then becomes `crashed` rows; the other shards' results are kept and the job ends."""
    from ray_jobs.config import SandboxConfig
    from ray_jobs.scoring.items import ScoreItem
    from ray_jobs.scoring.shards import SHARD_RETRIES, Shard, shard_path
    from ray_jobs.tasks.datasets import load_dataset
    from tests.support.scoring import score_shards

    task = load_dataset("humaneval").tasks["HumanEval/0"]
    good = Shard("good", [ScoreItem("HumanEval/0", 0, task.canonical_solution)])
    broken = Shard("broken", [ScoreItem("HumanEval/9999", 0, "    return 1\n")])
    stats = score_shards(
        [good, broken],
        tmp_path,
        "humaneval",
        ("base",),
        SandboxConfig(),
        None,
        workers=1,
        config_id="test",
        progress=False,
    )
    assert stats.shards_total == 2
    good_rows = pq.read_table(shard_path(tmp_path, good)).to_pylist()
    broken_rows = pq.read_table(shard_path(tmp_path, broken)).to_pylist()
    assert [r["status"] for r in good_rows] == ["passed"]
    assert [(r["status"], r["error_type"]) for r in broken_rows] == [("crashed", "ScoringTaskFailed")]
    assert f"failed {SHARD_RETRIES + 1} times" in broken_rows[0]["error_message"]


@pytest.mark.timeout(300)
def test_more_scoring_workers_than_free_cpus_still_finish(tmp_path, ray_local):
    """Replicas hold CPUs for the whole run, so some scoring workers may never be placed: shards go
    only to workers that started, and the job does not wait on the others."""
    import ray

    from ray_jobs.config import SandboxConfig
    from ray_jobs.scoring.items import ScoreItem
    from ray_jobs.scoring.shards import Shard, shard_path
    from ray_jobs.tasks.datasets import load_dataset
    from tests.support.scoring import score_shards

    tasks = load_dataset("humaneval").tasks
    shards = [
        Shard(f"s{i}", [ScoreItem(f"HumanEval/{i}", 0, tasks[f"HumanEval/{i}"].canonical_solution)]) for i in range(12)
    ]
    workers = int(ray.cluster_resources()["CPU"]) + 6  # more than the cluster can ever place
    score_shards(
        shards,
        tmp_path,
        "humaneval",
        ("base",),
        SandboxConfig(),
        None,
        workers=workers,
        config_id="test",
        progress=False,
    )
    assert [pq.read_table(shard_path(tmp_path, s)).column("status").to_pylist() for s in shards] == [["passed"]] * 12
