"""A sweep end to end on the CPU path: tiny real model, one Serve app, 2 configs generated together."""

from __future__ import annotations

import json

import pytest

from ray_jobs.config import SweepConfig
from ray_jobs.sweep import expand, run_sweep
from ray_jobs.tiny_model import build

pytestmark = pytest.mark.slow  # engine starts of their own


def test_sweep_serves_once_runs_both_configs_and_resumes(tmp_path, ray_local):
    model = build(tmp_path / "tiny")
    sweep = SweepConfig(
        **{
            "output_dir": str(tmp_path / "sweep"),
            "base": {
                "dataset": "humaneval",
                "limit": 3,
                "k": [1, 2],
                "model": {"model": str(model)},
                "serving": {"device": "cpu", "replicas": 1},
                "sampling": {"max_tokens": 16, "seed": None},
                "generation": {"num_samples": 2},
            },
            "matrix": {"prompt.thinking": [False, True]},
        }
    )
    assert [name for _, name, _ in expand(sweep)] == ["thinking=false", "thinking=true"]
    index = run_sweep(sweep)
    assert set(index) == {"thinking=false", "thinking=true"}
    for entry in index.values():
        assert set(entry["pass_at_k"]["base"]) == {"pass@1", "pass@2"}
    root = tmp_path / "sweep"
    # one app for both: served with the context the longer-prompted config needs, within the model's 4,096
    fits = [json.loads((root / name / "summary.json").read_text())["model_fit"] for name in index]
    assert all(f["context_limit"] == 4096 and f["max_model_len"] == f["longest_prompt_tokens"] + 16 for f in fits)
    assert (root / "index.md").exists() and (root / "report.html").exists()
    report = json.loads((root / "report.json").read_text())
    assert report["comparisons"][0]["baseline"] == "thinking=false"
    mtimes = {p: p.stat().st_mtime_ns for p in root.glob("*/summary.json")}
    run_sweep(sweep)  # both finished: skipped, nothing served or rewritten
    assert {p: p.stat().st_mtime_ns for p in root.glob("*/summary.json")} == mtimes


def test_model_variants_are_served_in_turn_each_with_its_own_weights(tmp_path, ray_local):
    """The model axis (checkpoints here; vLLM `quantization` variants go the same way on GPUs)."""
    import pyarrow.parquet as pq

    first, second = build(tmp_path / "tiny-a", seed=0), build(tmp_path / "tiny-b", seed=1)
    sweep = SweepConfig(
        **{
            "output_dir": str(tmp_path / "sweep"),
            "base": {
                "dataset": "humaneval",
                "limit": 2,
                "k": [1],
                "model": {"served_name": "tiny"},
                "serving": {"device": "cpu", "replicas": 1},
                "sampling": {"max_tokens": 16, "seed": 7},
                "generation": {"num_samples": 1},
            },
            "models": [{"model": str(first)}, {"model": str(second)}],
        }
    )
    index = run_sweep(sweep)
    assert [(name, entry["model"]) for name, entry in index.items()] == [("m0", str(first)), ("m1", str(second))]
    responses = {
        name: pq.read_table(tmp_path / "sweep" / name / "generations").column("response").to_pylist() for name in index
    }
    assert responses["m0"] != responses["m1"]  # same prompts and seeds, different weights
    assert "| m1 |" in (tmp_path / "sweep" / "index.md").read_text()
