"""Prompt rendering: chat messages for instruct models, raw prompts with stops for base models."""

from __future__ import annotations

from ray_jobs.config import COMPLETION_STOPS, PromptConfig
from ray_jobs.tasks.datasets import Task


def chat_messages(task: Task, prompt: PromptConfig) -> list[dict]:
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    messages.append({"role": "user", "content": prompt.template.format(prompt=task.prompt.strip())})
    return messages


def completion_prompt(task: Task) -> str:
    return task.prompt


def stop_sequences(prompt: PromptConfig, extra: list[str]) -> list[str]:
    stops = list(COMPLETION_STOPS) if prompt.mode == "completion" else []
    return stops + [s for s in extra if s not in stops]
