from pathlib import Path

import pytest

from ray_jobs import config
from ray_jobs.config import EvalConfig
from ray_jobs.generation.planning import RequestRow, generation_rows, group_into_shards, plan_requests, request_body
from ray_jobs.generation.preflight import resolve_sampling
from ray_jobs.tasks.datasets import load_dataset
from serve_app.model_info import ModelProfile

TASK = load_dataset("humaneval").tasks["HumanEval/2"]


QWEN3 = ModelProfile(
    "Qwen/Qwen3-0.6B", Path("/nonexistent"), ("Qwen3ForCausalLM",), "qwen3", 40960, "max_position_embeddings"
)


def cfg(**extra) -> EvalConfig:
    """Fitted as the preflight fits it for a Qwen3 model (without reading one)."""
    unfitted = EvalConfig.model_validate({"output_dir": "/tmp/x", **extra})
    sampling, _ = resolve_sampling(unfitted, QWEN3)
    return unfitted.fitted_to(4096, sampling)


def test_n_200_spreads_into_chunks_with_distinct_seeds():
    rows = plan_requests(["HumanEval/1", "HumanEval/0"], num_samples=200, chunk_size=20, base_seed=7)
    assert len(rows) == 20 and rows[0].task_id == "HumanEval/0"
    assert sum(r.n for r in rows if r.task_id == "HumanEval/0") == 200
    assert len({r.seed for r in rows}) == 20
    assert [r.first_completion_id for r in rows[:3]] == [0, 20, 40]
    single = plan_requests(["HumanEval/0"], 5, 20, base_seed=1, single_sample_requests=True)
    assert [(r.n, r.seed) for r in single] == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]
    assert all(r.seed is None for r in plan_requests(["HumanEval/0"], 5, 2, base_seed=None))


def test_shards_are_deterministic_and_bounded():
    rows = plan_requests([f"HumanEval/{i}" for i in range(10)], 3, 3, 0)
    shards = group_into_shards(rows, 7, "salt")
    assert [sum(r.n for r in s) for _, s in shards] == [6, 6, 6, 6, 6]
    assert group_into_shards(rows, 7, "salt") == shards
    assert group_into_shards(rows, 7, "other")[0][0] != shards[0][0]


def test_request_bodies_follow_mode_and_thinking():
    row = RequestRow("HumanEval/2", 0, 0, 4, 11)
    method, body = request_body(row, TASK, cfg(prompt={"thinking": True}))
    assert method == "chat" and body["n"] == 4 and body["seed"] == 11
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.6, 0.95, 20, 8192)
    assert "Can you complete the following Python function?" in body["messages"][-1]["content"]
    _, off = request_body(row, TASK, cfg())
    assert off["chat_template_kwargs"] == {"enable_thinking": False} and off["temperature"] == 0.7
    method, raw = request_body(row, TASK, cfg(prompt={"mode": "completion"}, sampling={"temperature": 0.2}))
    assert method == "completions" and raw["prompt"] == TASK.prompt and "\ndef " in raw["stop"]
    assert raw["temperature"] == 0.2


def test_generation_rows_keep_all_choices_and_fill_errors():
    row = RequestRow("HumanEval/2", 1, 2, 2, None)
    response = {
        "usage": {"prompt_tokens": 50},
        "choices": [
            {
                "index": 1,
                "message": {"content": "```python\nreturn number % 1.0\n```"},
                "finish_reason": "stop",
                "token_ids": [1, 2],
            },
            {"index": 0, "message": {"content": "<think>hmm"}, "finish_reason": "length", "token_ids": [1, 2, 3]},
        ],
    }
    out = generation_rows(row, TASK, cfg(), response, None, 1.5, "r1", "cid", 100.0)
    assert [(r["completion_id"], r["finish_reason"], r["completion_tokens"]) for r in out] == [
        (2, "length", 3),
        (3, "stop", 2),
    ]
    assert out[0]["completion"] == "" and out[1]["completion"] == "    return number % 1.0\n"
    errors = generation_rows(row, TASK, cfg(), None, "EngineDeadError: x", 0.1, None, "cid", 100.0)
    assert [(r["completion_id"], r["finish_reason"]) for r in errors] == [(2, "error"), (3, "error")]
    short = generation_rows(row, TASK, cfg(), {"choices": response["choices"][:1]}, None, 0.1, None, "cid", 100.0)
    assert all(r["error"] == "expected 2 choices, got 1" for r in short)
    assert {r["request_started_at"] for r in out + errors + short} == {100.0}  # every sample carries its request's


def test_config_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: humaneval_plus\nsampling:\n  temperature: 0.2\n  top_p: 0.5\n")
    built = config.build(EvalConfig, path, {"output_dir": tmp_path, "sampling": {"temperature": 0.9}})
    assert (built.dataset, built.sampling.temperature, built.sampling.top_p) == ("humaneval_plus", 0.9, 0.5)
    path.write_text("samplin: {}\n")
    with pytest.raises(config.ConfigError, match="samplin"):
        config.build(EvalConfig, path, {"output_dir": tmp_path})
    with pytest.raises(config.ConfigError, match="max_tokens"):
        config.build(
            EvalConfig,
            None,
            {"output_dir": tmp_path, "sampling": {"max_tokens": 99999}, "serving": {"max_model_len": 4096}},
        )


def test_generation_id_ignores_serving_but_not_sampling():
    base = cfg()
    assert cfg(serving={"replicas": 8}).generation_id() == base.generation_id()
    assert cfg(sampling={"temperature": 0.1}).generation_id() != base.generation_id()
    assert cfg(prompt={"thinking": True}).generation_id() != base.generation_id()


def test_generation_rows_record_where_the_code_was_found():
    row = RequestRow("HumanEval/2", 0, 0, 3, None)
    response = {
        "choices": [
            {"index": 0, "message": {"content": "```python\nreturn number % 1.0\n```"}, "finish_reason": "stop"},
            {
                "index": 1,
                "message": {"content": "<think>x</think><answer>\n    return number % 1.0\n</answer>"},
                "finish_reason": "stop",
            },
            {"index": 2, "message": {"content": "<think>hmm"}, "finish_reason": "length"},
        ]
    }
    out = generation_rows(row, TASK, cfg(), response, None, 1.0, "r1", "cid", 100.0)
    assert [(r["extracted_from"], r["completion"]) for r in out] == [
        ("fence", "    return number % 1.0\n"),
        ("tag", "    return number % 1.0\n"),
        ("none", ""),
    ]
    seed = generation_rows(row, TASK, cfg(prompt={"extraction": "seed"}), response, None, 1.0, "r1", "cid", 100.0)
    assert [r["extracted_from"] for r in seed] == ["fence", "text", "none"]  # the seed runs the tags as code
    assert "<answer>" in seed[1]["completion"]
    errors = generation_rows(row, TASK, cfg(), None, "EngineDeadError: x", 0.1, None, "cid", 100.0)
    assert {r["extracted_from"] for r in errors} == {None}  # no response, no extraction
    completion_mode = cfg(prompt={"mode": "completion"})
    raw = generation_rows(
        RequestRow("HumanEval/2", 0, 0, 1, None),
        TASK,
        completion_mode,
        {"choices": [{"index": 0, "text": "    return 0.5\n", "finish_reason": "stop"}]},
        None,
        1.0,
        "r1",
        "cid",
        100.0,
    )
    assert (raw[0]["extracted_from"], raw[0]["completion"]) == ("text", "    return 0.5\n")
    assert cfg(prompt={"extraction": "seed"}).generation_id() != cfg().generation_id()  # the shards hold the code


def test_evaluate_extraction_flag_sets_prompt_extraction(tmp_path):
    from ray_jobs import cli, evaluate

    built = evaluate.build_config(evaluate.parse_args(["--output-dir", str(tmp_path), "--extraction", "seed"]))
    assert built.prompt.extraction == "seed"
    assert evaluate.build_config(evaluate.parse_args(["--output-dir", str(tmp_path)])).prompt.extraction == "auto"
    with pytest.raises(cli.UsageError, match="--extraction"):
        evaluate.parse_args(["--output-dir", str(tmp_path), "--extraction", "fence"])
