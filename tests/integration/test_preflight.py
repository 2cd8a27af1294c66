"""Fitting a run to the model a user brings, before any replica starts: refusals that come in
seconds, say what to change, and leave nothing behind; context and sampling chosen from the model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ray_jobs.config import EvalConfig
from ray_jobs.generation import preflight
from ray_jobs.tasks.datasets import load_dataset
from serve_app.model_info import context_limit

REPO = Path(__file__).resolve().parents[2]
TASKS = [load_dataset("humaneval").tasks[f"HumanEval/{i}"] for i in range(8)]


def evaluate_cli(tmp_path: Path, *args: str) -> tuple[int, str, float]:
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ray_jobs.evaluate",
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "--limit",
            "8",
            "--no-progress",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert not out.exists(), "a refused run wrote its output directory"
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stderr, elapsed


def config(model: Path, **extra) -> EvalConfig:
    data = {"output_dir": "/nonexistent/out", "limit": 8, "model": {"model": str(model)}}
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return EvalConfig.model_validate(data)


# ---- refusals, through the command line -------------------------------------------------------


def test_a_base_model_in_chat_mode_is_refused_naming_completion_mode(tmp_path, model_shapes):
    code, err, elapsed = evaluate_cli(tmp_path, "--model", str(model_shapes("llama-base")))
    assert code == 2 and "no chat template" in err and "--prompt-mode completion" in err
    assert elapsed < 60


def test_more_tokens_than_the_context_holds_is_refused_naming_both_numbers(tmp_path, model_shapes):
    code, err, _ = evaluate_cli(
        tmp_path, "--model", str(model_shapes("llama-base")), "--prompt-mode", "completion", "--max-tokens", "5000"
    )
    assert code == 2 and "--max-tokens 5000" in err and "1024" in err and "--limit" in err


def test_a_context_beyond_the_models_is_refused(tmp_path, tiny_model):
    code, err, _ = evaluate_cli(tmp_path, "--model", str(tiny_model), "--max-model-len", "8192")
    assert code == 2 and "8192" in err and "4096" in err and "max_position_embeddings" in err


def test_an_architecture_vllm_does_not_serve_is_refused(tmp_path, tiny_model):
    odd = tmp_path / "odd-model"
    shutil.copytree(tiny_model, odd)
    config_json = json.loads((odd / "config.json").read_text())
    config_json["architectures"] = ["FooBarForCausalLM"]
    (odd / "config.json").write_text(json.dumps(config_json))
    code, err, _ = evaluate_cli(tmp_path, "--model", str(odd))
    assert code == 2 and "FooBarForCausalLM" in err and "model_impl: transformers" in err


@pytest.mark.parametrize(
    "model, expected",
    [
        ("/nonexistent/model-dir", "does not exist or has no config.json"),
        ("rhe-tests/no-such-model-anywhere", "not in the local Hugging Face cache"),
    ],
)
def test_a_model_that_does_not_resolve_is_refused(tmp_path, model, expected):
    code, err, elapsed = evaluate_cli(tmp_path, "--model", model)
    assert code == 2 and expected in err and elapsed < 60


# ---- what is chosen for a model ------------------------------------------------------------------


def test_the_context_served_is_what_the_run_needs_within_the_models_limit(tiny_model):
    fitted = preflight.fit(config(tiny_model, sampling={"max_tokens": 64}), TASKS)
    assert fitted.profile.context_limit == 4096
    assert fitted.max_model_len == fitted.longest_prompt + 64 < 4096
    assert fitted.longest_prompt > 50  # the chat template and the prompt, tokenized


def test_default_max_tokens_are_capped_to_a_small_context(model_shapes):
    fitted = preflight.fit(config(model_shapes("llama-base"), prompt={"mode": "completion"}), TASKS)
    assert fitted.max_model_len == 1024
    assert fitted.sampling["max_tokens"] == 1024 - fitted.longest_prompt
    assert any("capped" in note for note in fitted.notes)


def test_sampling_defaults_come_from_the_model(tiny_model, model_shapes):
    qwen3 = preflight.fit(config(tiny_model), TASKS)
    assert (qwen3.sampling["temperature"], qwen3.sources["temperature"]) == (0.7, "Qwen3 recommendation")
    thinking = preflight.fit(config(tiny_model, prompt={"thinking": True}), TASKS)
    assert (thinking.sampling["top_p"], thinking.sources["top_p"]) == (0.95, "Qwen3 recommendation")
    starcoder = preflight.fit(config(model_shapes("starcoder")), TASKS)
    assert (starcoder.sampling["temperature"], starcoder.sources["temperature"]) == (1.0, "vLLM default")
    explicit = preflight.fit(config(model_shapes("starcoder"), sampling={"temperature": 0.2}), TASKS)
    assert (explicit.sampling["temperature"], explicit.sources["temperature"]) == (0.2, "explicit")


def test_generation_config_json_is_used_where_there_is_no_recommendation(tmp_path, model_shapes):
    model = tmp_path / "llama-tuned"
    shutil.copytree(model_shapes("llama-base"), model)
    (model / "generation_config.json").write_text(json.dumps({"temperature": 0.2, "top_p": 0.9, "max_new_tokens": 300}))
    fitted = preflight.fit(config(model, prompt={"mode": "completion"}), TASKS)
    assert (fitted.sampling["temperature"], fitted.sources["temperature"]) == (0.2, "generation_config.json")
    assert (fitted.sampling["max_tokens"], fitted.sources["max_tokens"]) == (300, "generation_config.json")


def test_thinking_on_a_template_that_ignores_it_is_a_warning(model_shapes, tiny_model):
    plain = preflight.fit(config(model_shapes("starcoder"), prompt={"thinking": True}), TASKS)
    assert any("ignores enable_thinking" in note for note in plain.notes)
    honoured = preflight.fit(config(tiny_model, prompt={"thinking": True}), TASKS)
    assert not any("ignores enable_thinking" in note for note in honoured.notes)


@pytest.mark.parametrize(
    "hf_config, expected",
    [
        ({"max_position_embeddings": 32768}, 32768),
        ({"n_positions": 1024}, 1024),
        ({"max_position_embeddings": 8192, "max_seq_len": 4096}, 4096),  # the smallest, as vLLM
        (
            {
                "max_position_embeddings": 32768,
                "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
            },
            131072,
        ),
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2.0}}, 8192),
        ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, 131072),
        ({"text_config": {"max_position_embeddings": 2048}}, 2048),
        ({}, 2048),
    ],
)
def test_context_limit_is_derived_as_vllm_derives_it(hf_config, expected):
    assert context_limit(hf_config)[0] == expected
