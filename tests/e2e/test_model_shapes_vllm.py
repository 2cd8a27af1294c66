"""Models other than the default Qwen3, served by real vLLM (CPU) through the whole job: a Llama
base model without a chat template and a 1,024-token context in completion mode, a StarCoder
(GPTBigCode) model in chat mode, and a checkpoint whose weights are broken, whose replica's own
error must reach the user, and a model that answers in <answer> tags. Each starts its own Serve
app, as a user's run does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ray_jobs import evaluate
from ray_jobs.config import EvalConfig
from ray_jobs.storage import schemas
from ray_jobs.tasks.datasets import load_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # an engine start per test; startup_timeout_s 900
TASKS = load_dataset("humaneval").tasks
ROOT = Path(__file__).resolve().parents[2]


def own_app_config(output_dir: Path, model: Path, **extra) -> EvalConfig:
    data = {
        "output_dir": output_dir,
        "limit": 2,
        "k": [1],
        "report": False,
        "model": {"model": str(model)},
        "serving": {"device": "cpu", "replicas": 1, "startup_timeout_s": 900},
        "sampling": {"seed": None},
        "generation": {"num_samples": 2, "chunk_size": 2},
        **extra,
    }
    return EvalConfig.model_validate(data)


def generations(cfg: EvalConfig) -> list[dict]:
    return schemas.read_tables(
        sorted((cfg.output_dir / "generations").glob("*.parquet")), schemas.GENERATIONS
    ).to_pylist()


def test_a_base_model_runs_in_completion_mode_within_its_small_context(tmp_path, ray_local, model_shapes):
    model = model_shapes("llama-base")
    cfg = own_app_config(tmp_path / "llama", model, prompt={"mode": "completion"})
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    fit = summary["model_fit"]
    assert (fit["architectures"], fit["context_limit"], fit["max_model_len"]) == (["LlamaForCausalLM"], 1024, 1024)
    # vLLM's default max_tokens would not fit: capped to what the longest prompt leaves
    assert summary["sampling"]["max_tokens"] == 1024 - fit["longest_prompt_tokens"]
    assert summary["sampling_sources"]["max_tokens"] == "vLLM default, capped to the context"
    assert summary["sampling_sources"]["temperature"] == "vLLM default" and summary["sampling"]["temperature"] == 1.0
    rows = generations(cfg)
    assert len(rows) == 4 and all(r["finish_reason"] in ("stop", "length") for r in rows)
    # the raw HumanEval prompt was sent, not a chat conversation
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    assert {r["task_id"]: r["prompt_tokens"] for r in rows} == {
        t: len(tokenizer(TASKS[t].prompt)["input_ids"]) for t in ("HumanEval/0", "HumanEval/1")
    }
    assert sum(summary["status_counts"]["base"].values()) == 4


def test_a_starcoder_model_in_chat_mode_from_the_command_line_with_a_quiet_console(tmp_path, ray_local, model_shapes):
    """The user's command, as a user runs it: a StarCoder (GPTBigCode) model in chat mode, and a
    terminal that shows a header, progress, pass@k and where the outputs are; no Ray or vLLM
    logs, no traceback, no ERROR line (they are in the run's log file)."""
    out = tmp_path / "starcoder"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ray_jobs.evaluate",
            "--model",
            str(model_shapes("starcoder")),
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "--replicas",
            "1",
            "--limit",
            "2",
            "--num-samples",
            "2",
            "--k",
            "1",
            "--max-tokens",
            "24",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    console = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stderr
    assert len(console) <= 40, "\n".join(console)
    assert not [line for line in console if "Traceback" in line or "ERROR" in line], "\n".join(console)
    assert any(line.startswith("pass@1") for line in console) and f"report:  {out / 'report.html'}" in console
    log = (out / "logs" / "evaluate.log").read_text()
    assert "vLLM" in log or "vllm" in log  # the engines' logs went to the file instead

    summary = json.loads((out / "summary.json").read_text())
    fit = summary["model_fit"]
    assert (fit["architectures"], fit["context_limit"]) == (["GPTBigCodeForCausalLM"], 2048)
    assert fit["max_model_len"] == fit["longest_prompt_tokens"] + 24
    cfg = EvalConfig.model_validate(summary["config"])
    rows = generations(cfg)
    assert len(rows) == 4 and all(
        r["prompt_tokens"] == fit["longest_prompt_tokens"] or r["task_id"] == "HumanEval/0" for r in rows
    )
    assert all(1 <= r["completion_tokens"] <= 24 for r in rows if r["finish_reason"] != "error")
    assert not [r for r in rows if r["finish_reason"] == "error"]


def test_a_replica_that_fails_to_start_reports_its_own_error(tmp_path, ray_local, model_shapes, capsys):
    from ray import serve

    broken = tmp_path / "broken-weights"
    shutil.copytree(model_shapes("llama-base"), broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # the preflight reads no weights: only the replica finds out
    before = set(serve.status().applications)
    code = evaluate.main(
        [
            "--model",
            str(broken),
            "--prompt-mode",
            "completion",
            "--output-dir",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--replicas",
            "1",
            "--limit",
            "1",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    # the replica's own exception (vLLM cannot parse the cut safetensors header), and where the rest is
    assert re.search(r"failed to start \(Serve app '[^']+'\): [\w.]*(Error|Exception): .*Unterminated string", err), err
    assert "failed to update the deployments" not in err.lower()
    assert re.search(r"full log: \S+/logs/serve ", err)
    assert set(serve.status().applications) == before  # nothing left serving


def test_a_model_answering_in_answer_tags_has_its_code_found_in_the_tag(tmp_path, ray_local, model_shapes):
    """A model whose template pre-fills an empty <think></think> block and which then answers,
    as RL-trained reasoning models do, in an <answer> tag without a fence (the answer-tags shape
    says `<answer>\\n    return 0` whatever it is asked): extraction records `tag` for every
    sample, and the tag's content is what was scored."""
    from ray_jobs.tiny_model import ANSWER_RESPONSE

    cfg = own_app_config(tmp_path / "tags", model_shapes("answer-tags"), sampling={"seed": None, "max_tokens": 16})
    summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
    rows = generations(cfg)
    assert len(rows) == 4 and {r["response"] for r in rows} == {ANSWER_RESPONSE}, rows
    assert {(r["extracted_from"], r["completion"]) for r in rows} == {("tag", "    return 0\n")}
    assert summary["extraction"] == {"rules": "auto", "found": {"fence": 0, "tag": 4, "text": 0, "none": 0}}
    assert (
        summary["status_counts"]["base"]["failed"] == 4
    )  # run as the function's body: a wrong answer, not a syntax error
