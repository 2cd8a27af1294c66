"""Canonical runtimes kept between runs: keyed by what they depend on, never trusted blindly."""

from __future__ import annotations

import json
import logging

from ray_jobs.config import SandboxConfig
from ray_jobs.scoring import canonical_runtimes
from ray_jobs.tasks.datasets import load_dataset


def test_the_file_is_keyed_by_dataset_and_sandbox_settings(tmp_path):
    humaneval, mini = load_dataset("humaneval"), load_dataset("humaneval_plus_mini")
    key = canonical_runtimes.cache_file(tmp_path, humaneval, SandboxConfig())
    assert key == canonical_runtimes.cache_file(tmp_path, humaneval, SandboxConfig())
    assert key != canonical_runtimes.cache_file(tmp_path, humaneval, SandboxConfig(timeout_s=5.0))
    assert key != canonical_runtimes.cache_file(tmp_path, mini, SandboxConfig())


def test_measured_runtimes_are_kept_and_merged_but_not_a_failed_measurement(tmp_path):
    path = tmp_path / "deeper" / "runtimes.json"
    assert canonical_runtimes.load(path) == {}
    canonical_runtimes.save(path, {("HumanEval/0", "base"): 0.5, ("HumanEval/1", "base"): None})
    canonical_runtimes.save(path, {("HumanEval/2", "plus"): 1.25, ("HumanEval/0", "base"): float("nan")})
    assert canonical_runtimes.load(path) == {("HumanEval/0", "base"): 0.5, ("HumanEval/2", "plus"): 1.25}
    assert not list(path.parent.glob(".*"))  # written through a temporary file, renamed


def test_a_damaged_or_unwritable_file_is_ignored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "runtimes.json"
    for damage in ("{not json", json.dumps([["HumanEval/0", "base"]]), json.dumps([[1, 2, "x"]])):
        path.write_text(damage)
        with caplog.at_level(logging.WARNING):
            assert canonical_runtimes.load(path) == {}
        assert "cannot be read" in caplog.text
        caplog.clear()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        canonical_runtimes.save(blocker / "runtimes.json", {("HumanEval/0", "base"): 0.5})
    assert "could not keep" in caplog.text
