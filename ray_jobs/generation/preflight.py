"""Before any replica starts: fit the run to the model it is given, or refuse in words a user can
act on. Answers in seconds on a CPU, and writes nothing.

* The model resolves (a local path, or a Hugging Face id in the cache or on the Hub) and its
  architecture is one the installed vLLM serves.
* Its tokenizer loads; chat mode needs a chat template; `--thinking` on a template that ignores
  `enable_thinking` is a warning.
* The longest prompt of the chosen tasks (tokenized with the model's template) plus `max_tokens`
  fits the model's context; the context served is that need, not more (no KV cache wasted), and
  never beyond the model's own limit.
* Sampling defaults: an explicit value wins; then Qwen3's published per-mode recommendations for
  Qwen3 models; then the model's generation_config.json (as vLLM itself does); then vLLM's own.
* On GPU: enough GPUs for replicas x tensor_parallel_size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from contracts import UserError
from ray_jobs.config import EvalConfig
from ray_jobs.generation.prompts import chat_messages, completion_prompt
from ray_jobs.tasks.datasets import Task
from serve_app.model_info import ModelProfile, ModelSourceError, read_profile, vllm_architectures

log = logging.getLogger(__name__)

# Qwen3's published recommendations (model card, "Best Practices"), per mode.
QWEN3_SAMPLING = {
    False: {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "max_tokens": 2048},
    True: {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "max_tokens": 8192},
}

# vLLM's sampling defaults for a model without generation_config.json (SamplingParams)
VLLM_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0}
DEFAULT_MAX_TOKENS = 2048  # a model that names none: room for a function and some reasoning
MIN_MAX_TOKENS = 16  # fewer than this cannot hold a solution: refuse rather than cap


class PreflightError(UserError, ValueError):
    """The run cannot work with this model as configured; the message says how to fix it."""


@dataclass(frozen=True)
class Fitted:
    """What the preflight decided, to be written into the configuration the run uses."""

    profile: ModelProfile
    max_model_len: int | None  # None: an attached app's own
    sampling: dict  # every SamplingConfig field, resolved
    sources: dict[str, str]  # sampling field -> where its value came from
    longest_prompt: int | None  # None: no tokenizer to count with
    notes: list[str] = field(default_factory=list)


def resolve_sampling(cfg: EvalConfig, profile: ModelProfile) -> tuple[dict, dict[str, str]]:
    values, sources = cfg.sampling.model_dump(), {}
    layers = [
        ("Qwen3 recommendation", QWEN3_SAMPLING[cfg.prompt.thinking] if profile.qwen3 else {}),
        ("generation_config.json", profile.generation_defaults),
        ("vLLM default", {**VLLM_SAMPLING, "max_tokens": DEFAULT_MAX_TOKENS}),
    ]
    for name in ("temperature", "top_p", "top_k", "min_p", "max_tokens"):
        if values[name] is not None:
            sources[name] = "explicit"
            continue
        source, value = next((s, layer[name]) for s, layer in layers if layer.get(name) is not None)
        values[name], sources[name] = value, source
    return values, sources


def _tokenizer(profile: ModelProfile, trust_remote_code: bool):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(profile.directory), trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise PreflightError(
            f"the tokenizer of {profile.source!r} does not load ({type(exc).__name__}: "
            f"{str(exc)[:300]}); a model needs tokenizer files beside its config.json"
        ) from None


def _prompt_tokens(cfg: EvalConfig, tokenizer, tasks: list[Task]) -> int:
    longest = 0
    for task in tasks:
        if cfg.prompt.mode == "completion":
            count = len(tokenizer(completion_prompt(task))["input_ids"])
        else:  # rendered, then tokenized as vLLM's chat endpoint does it
            text = tokenizer.apply_chat_template(
                chat_messages(task, cfg.prompt),
                add_generation_prompt=True,
                tokenize=False,
                enable_thinking=cfg.prompt.thinking,
            )
            count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        longest = max(longest, count)
    return longest


def _template_honours_thinking(tokenizer) -> bool:
    message = [{"role": "user", "content": "x"}]
    rendered = [
        tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=False, enable_thinking=on)
        for on in (True, False)
    ]
    return rendered[0] != rendered[1]


def check_architecture(cfg: EvalConfig, profile: ModelProfile) -> None:
    supported = vllm_architectures()
    if supported is None or cfg.serving.engine_kwargs.get("model_impl") == "transformers":
        return  # no vLLM here to ask (a driver without it), or the user chose the Transformers backend
    if not set(profile.architectures) & supported:
        named = ", ".join(profile.architectures) or "none named in config.json"
        raise PreflightError(
            f"the architecture of {profile.source!r} ({named}) is not one the installed vLLM "
            "serves; choose another model, or set serving.engine_kwargs.model_impl: transformers "
            "to try vLLM's Transformers backend"
        )


def check_gpus(cfg: EvalConfig, device: str, cluster_gpus: float) -> None:
    needed = cfg.serving.replicas * cfg.serving.tensor_parallel_size
    if device == "gpu" and cluster_gpus < needed:
        raise PreflightError(
            f"{cfg.serving.replicas} replica(s) x tensor_parallel_size "
            f"{cfg.serving.tensor_parallel_size} need {needed} GPU(s), the cluster has "
            f"{cluster_gpus:g}; lower --replicas or add GPU nodes"
        )


def _unread_attached(cfg: EvalConfig, reason: str) -> Fitted:
    """An attached app serves a model whose files this driver cannot read (a path on another node,
    a cache only the replicas have): nothing to fit; the app's context applies."""
    profile = ModelProfile.unread(cfg.model.model)
    sampling, sources = resolve_sampling(cfg, profile)
    note = (
        f"the files of {cfg.model.model!r} are not readable here ({reason}); the attached app's context "
        "applies and unset sampling values are vLLM's defaults"
    )
    log.warning("%s", note)
    return Fitted(profile, cfg.serving.max_model_len, sampling, sources, None, [note])


def fit(cfg: EvalConfig, tasks: list[Task], serving_checks: bool = True) -> Fitted:
    """`serving_checks`: this run starts the replicas (False: attached to a running app)."""
    try:
        profile = read_profile(cfg.model.model)
    except ModelSourceError as exc:
        if serving_checks:
            raise PreflightError(str(exc)) from None
        return _unread_attached(cfg, str(exc).split(";")[0])
    if serving_checks:
        check_architecture(cfg, profile)
    tokenizer = _tokenizer(profile, cfg.model.trust_remote_code)
    notes = []
    if cfg.prompt.mode == "chat" and not tokenizer.chat_template:
        raise PreflightError(
            f"{profile.source!r} has no chat template (a base model?); score it with "
            "--prompt-mode completion, which sends the raw HumanEval prompt"
        )
    if cfg.prompt.mode == "chat" and cfg.prompt.thinking and not _template_honours_thinking(tokenizer):
        notes.append(
            f"the chat template of {profile.source!r} ignores enable_thinking: --thinking changes "
            "only the sampling defaults"
        )
    longest = _prompt_tokens(cfg, tokenizer, tasks)
    sampling, sources = resolve_sampling(cfg, profile)
    limit = profile.context_limit
    if cfg.serving.max_model_len is not None:
        if cfg.serving.max_model_len > limit:
            raise PreflightError(
                f"--max-model-len {cfg.serving.max_model_len} exceeds the context of "
                f"{profile.source!r}: {limit} tokens ({profile.context_key}); lower it, or leave "
                "it out to fit the run to the model"
            )
        limit = cfg.serving.max_model_len
    room = limit - longest
    if sources["max_tokens"] == "explicit":
        if sampling["max_tokens"] > room:
            raise PreflightError(
                f"the longest prompt ({longest} tokens) plus --max-tokens {sampling['max_tokens']} is "
                f"{longest + sampling['max_tokens']} tokens, more than the {limit} the model's context holds; "
                f"lower --max-tokens to {max(room, 0)} or less, or choose fewer tasks with --limit"
            )
    elif sampling["max_tokens"] > room:
        if room < MIN_MAX_TOKENS:
            raise PreflightError(
                f"the longest prompt ({longest} tokens) leaves {max(room, 0)} of the model's "
                f"{limit} tokens for an answer; choose shorter prompts or a model with a longer context"
            )
        notes.append(
            f"max_tokens {sampling['max_tokens']} ({sources['max_tokens']}) capped to {room}: the longest "
            f"prompt takes {longest} of the model's {limit} tokens"
        )
        sampling["max_tokens"], sources["max_tokens"] = room, f"{sources['max_tokens']}, capped to the context"
    max_model_len = cfg.serving.max_model_len or longest + sampling["max_tokens"]
    if 0 < (tokenizer.model_max_length or 0) < max_model_len:  # unset is a huge sentinel
        notes.append(
            f"the tokenizer's model_max_length ({tokenizer.model_max_length}) is below the {max_model_len} "
            "tokens served; vLLM follows config.json, as this run does"
        )
    for note in notes:
        log.warning("%s", note)
    if not serving_checks and cfg.serving.max_model_len is None:
        max_model_len = None  # the attached app serves what it was started with
    return Fitted(profile, max_model_len, sampling, sources, longest, notes)
