"""Generation planning and response parsing. Pure functions; the Ray wiring is in driver.py.

A request row asks one replica for `n` samples of one task (a chunk). n=200 per task becomes ten
requests of n=20 with distinct seeds, which spread over all replicas while each keeps the shared
prompt prefix in one engine batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray_jobs.config import EvalConfig
from ray_jobs.generation.extract import Extraction, extract, program_completion
from ray_jobs.generation.prompts import chat_messages, completion_prompt, stop_sequences
from ray_jobs.storage.keys import content_key
from ray_jobs.tasks.datasets import Task, task_sort_key


@dataclass(frozen=True)
class RequestRow:
    task_id: str
    chunk: int
    first_completion_id: int
    n: int
    seed: int | None

    def key(self) -> str:
        return f"{self.task_id}#{self.chunk}"


def plan_requests(
    task_ids: list[str], num_samples: int, chunk_size: int, base_seed: int | None, single_sample_requests: bool = False
) -> list[RequestRow]:
    """Chunks of at most `chunk_size` samples per task; with `single_sample_requests` every sample
    is its own n=1 request (vLLM-CPU kills its engine on seeded n>1 requests whose prefill is
    chunked, so seeded CPU runs use n=1)."""
    size = 1 if single_sample_requests else chunk_size
    rows = []
    for task_index, task_id in enumerate(sorted(task_ids, key=task_sort_key)):
        for chunk, start in enumerate(range(0, num_samples, size)):
            seed = None if base_seed is None else base_seed + task_index * num_samples + start
            rows.append(RequestRow(task_id, chunk, start, min(size, num_samples - start), seed))
    return rows


def group_into_shards(rows: list[RequestRow], shard_samples: int, salt: str) -> list[tuple[str, list[RequestRow]]]:
    """Consecutive requests totalling at most `shard_samples` samples; keys are content hashes."""
    shards, current, count = [], [], 0
    for row in rows:
        if current and count + row.n > shard_samples:
            shards.append(current)
            current, count = [], 0
        current.append(row)
        count += row.n
    if current:
        shards.append(current)
    keyed = []
    for shard in shards:
        keyed.append((content_key(salt, [r.key() for r in shard]), shard))
    return keyed


def request_body(row: RequestRow, task: Task, cfg: EvalConfig) -> tuple[str, dict]:
    """(method, OpenAI request kwargs) for the LLMServer deployment."""
    sampling = cfg.sampling.model_dump()
    body = {
        "model": cfg.model.model_id,
        "n": row.n,
        "max_tokens": sampling["max_tokens"],
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "top_k": sampling["top_k"],
        "min_p": sampling["min_p"],
        "presence_penalty": sampling["presence_penalty"],
        "seed": row.seed,
        "stop": stop_sequences(cfg.prompt, sampling["stop"], task.benchmark) or None,
        "stream": False,
        "return_token_ids": True,
    }
    if cfg.prompt.mode == "completion":
        return "completions", {**body, "prompt": completion_prompt(task)}
    return "chat", {
        **body,
        "messages": chat_messages(task, cfg.prompt),
        "chat_template_kwargs": {"enable_thinking": cfg.prompt.thinking},
    }


def generation_rows(
    row: RequestRow,
    task: Task,
    cfg: EvalConfig,
    response: dict | None,
    error: str | None,
    latency_s: float,
    replica: str | None,
    config_id: str,
    started_at: float,
) -> list[dict]:
    """One row per requested sample. An error (engine error, timeout) fills every sample of the
    request with finish_reason "error" so nothing requested goes missing."""
    base = {
        "task_id": task.task_id,
        "config_id": config_id,
        "latency_s": latency_s,
        "replica": replica,
        "request_started_at": started_at,
    }
    choices = sorted((response or {}).get("choices") or [], key=lambda c: c.get("index", 0))
    if error is None and len(choices) != row.n:
        error = f"expected {row.n} choices, got {len(choices)}"
    if error is not None:
        return [
            {
                **base,
                "completion_id": row.first_completion_id + i,
                "response": "",
                "completion": "",
                "extracted_from": None,
                "finish_reason": "error",
                "prompt_tokens": None,
                "completion_tokens": None,
                "error": error[:2000],
            }
            for i in range(row.n)
        ]
    prompt_tokens = (response.get("usage") or {}).get("prompt_tokens")  # the prompt, counted once
    rows = []
    for i, choice in enumerate(choices):
        text = (
            choice["text"] if cfg.prompt.mode == "completion" else ((choice.get("message") or {}).get("content") or "")
        )
        extraction = response_extraction(text, task, cfg)
        token_ids = choice.get("token_ids")
        rows.append(
            {
                **base,
                "completion_id": row.first_completion_id + i,
                "response": text,
                "completion": extraction.code,
                "extracted_from": extraction.found,
                "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(token_ids) if token_ids is not None else None,
                "error": None,
            }
        )
    return rows


def response_extraction(text: str, task: Task, cfg: EvalConfig) -> Extraction:
    """What is appended to the task's prompt, and where it was found: HumanEval's completion-mode
    text as it came (cut by its stops); a chat answer's code; MBPP's whole program
    (generation/extract.py)."""
    program = task.benchmark.whole_program
    if cfg.prompt.mode == "completion":
        code = program_completion(text, task.entry_point) if program else text
        return Extraction(code, "text" if code.strip() else "none")
    return extract(text, task.entry_point, cfg.prompt.code_block, program, cfg.prompt.extraction)


def response_completion(text: str, task: Task, cfg: EvalConfig) -> str:
    return response_extraction(text, task, cfg).code
