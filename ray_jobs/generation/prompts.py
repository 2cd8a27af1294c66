"""Prompt rendering: chat messages for instruct models, raw prompts with stops for base models.

HumanEval's prompt is a signature and docstring to complete; MBPP+'s is a docstring holding the
task and an example assertion, after which a base model writes the whole program. The chat
template is the configuration's (by default its benchmark's: tasks/benchmarks.py)."""

from __future__ import annotations

from ray_jobs.config import PromptConfig
from ray_jobs.tasks.benchmarks import Benchmark
from ray_jobs.tasks.datasets import Task


def chat_messages(task: Task, prompt: PromptConfig) -> list[dict]:
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    messages.append({"role": "user", "content": prompt.template.format(prompt=task.prompt.strip())})
    return messages


def completion_prompt(task: Task) -> str:
    return task.prompt


def stop_sequences(prompt: PromptConfig, extra: list[str], benchmark: Benchmark) -> list[str]:
    """Completion mode: the benchmark's stops (human-eval's; EvalPlus's for MBPP), then `extra`."""
    stops = list(benchmark.completion_stops) if prompt.mode == "completion" else []
    return stops + [s for s in extra if s not in stops]
