"""What a model's own files say about serving and sampling it, read before any replica starts.

A model is a local directory or a Hugging Face id (found in the local cache, else its small files
fetched from the Hub). From its config.json comes the architecture and the context length vLLM
will allow (the same derivation vLLM makes: the smallest of the usual length fields, scaled by
RoPE scaling); from generation_config.json the sampling defaults its authors chose; from the
tokenizer files the chat template, if there is one.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from contracts import UserError

# vLLM's own list (vllm/transformers_utils/model_arch_config_convertor.py), smallest wins.
_LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
VLLM_DEFAULT_CONTEXT = 2048  # what vLLM assumes when config.json names no length
_SMALL_FILES = ["*.json", "*.jinja", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.py"]
# generation_config.json fields that are sampling parameters of a request (vLLM applies the same)
_SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_new_tokens": "max_tokens",
}


class ModelSourceError(UserError, ValueError):
    """The model cannot be found or read; the message says what to do."""


@dataclass(frozen=True)
class ModelProfile:
    source: str
    directory: Path
    architectures: tuple[str, ...]
    model_type: str
    context_limit: int | None  # None: the files could not be read
    context_key: str  # the config.json field the limit comes from (for messages)
    generation_defaults: dict = field(default_factory=dict)  # request field -> value

    @classmethod
    def unread(cls, source: str) -> ModelProfile:
        """A model served elsewhere whose files this machine cannot read."""
        return cls(source, Path(), (), "", None, "unknown: the model's files are not readable here")

    @property
    def qwen3(self) -> bool:
        """Qwen3 models keep the per-mode sampling their model card recommends."""
        return self.model_type.startswith("qwen3") or any(a.startswith("Qwen3") for a in self.architectures)


def locate(source: str) -> Path:
    """The directory holding the model's small files: the path itself, the Hugging Face cache's
    snapshot, or one downloaded now (config, tokenizer and generation files only)."""
    path = Path(source).expanduser()
    if path.exists() or source.startswith(("/", ".", "~")):
        if not (path / "config.json").is_file():
            raise ModelSourceError(
                f"model path {source!r} does not exist or has no config.json; pass a model "
                "directory (with config.json and tokenizer files) or a Hugging Face id"
            )
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, allow_patterns=_SMALL_FILES, local_files_only=True))
    except Exception:  # not cached: ask the Hub
        pass
    try:
        return Path(snapshot_download(source, allow_patterns=_SMALL_FILES))
    except Exception as exc:
        raise ModelSourceError(
            f"model {source!r} is not in the local Hugging Face cache and could not be fetched from the Hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); pass a local path with "
            f"--model, or download it first (huggingface-cli download {source})"
        ) from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"{path}: unreadable ({exc})") from None


def context_limit(config: dict) -> tuple[int, str]:
    """(tokens, field) as vLLM derives the longest context it will serve (`_get_and_verify_max_len`)."""
    text = config.get("text_config") or config  # multimodal models keep the language model's apart
    found = {key: text[key] for key in _LENGTH_KEYS if isinstance(text.get(key), int)}
    if "model_max_length" in found:  # Command-R and kin: it overrides the others, as in vLLM
        limit, key = found["model_max_length"], "model_max_length"
    elif found:
        key = min(found, key=found.get)
        limit = found[key]
    else:
        limit, key = VLLM_DEFAULT_CONTEXT, "vLLM's default (config.json names no length)"
    rope = text.get("rope_parameters") or text.get("rope_scaling")
    if isinstance(rope, dict) and "gemma3" not in str(text.get("model_type", "")):
        layers = rope.values() if all(isinstance(v, dict) for v in rope.values()) and rope else [rope]
        factor = 1.0
        for params in layers:
            kind = params.get("rope_type") or params.get("type") or "default"
            if kind in ("su", "longrope", "llama3"):
                if kind == "longrope" and "original_max_position_embeddings" in text:
                    return int(text["original_max_position_embeddings"]), "original_max_position_embeddings"
                continue
            factor = params.get("factor") or factor
            if kind == "yarn" and "original_max_position_embeddings" in params:
                limit = params["original_max_position_embeddings"]
        if factor != 1.0:
            limit, key = int(limit * factor), f"{key} x RoPE scaling {factor:g}"
    return int(limit), key


def sampling_defaults(generation_config: dict) -> dict:
    return {
        field_: generation_config[name]
        for name, field_ in _SAMPLING_FIELDS.items()
        if isinstance(generation_config.get(name), (int, float)) and not isinstance(generation_config[name], bool)
    }


def read_profile(source: str) -> ModelProfile:
    directory = locate(source)
    config = _read_json(directory / "config.json")
    limit, key = context_limit(config)
    return ModelProfile(
        source=source,
        directory=directory,
        architectures=tuple(config.get("architectures") or ()),
        model_type=str(config.get("model_type", "")),
        context_limit=limit,
        context_key=key,
        generation_defaults=sampling_defaults(_read_json(directory / "generation_config.json")),
    )


def vllm_architectures() -> set[str] | None:
    """The architectures the installed vLLM registers, read from its registry's source (importing
    vLLM takes seconds, and the driver may not have its dependencies); None without vLLM."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    registry = Path(spec.submodule_search_locations[0]) / "model_executor" / "models" / "registry.py"
    try:
        tree = ast.parse(registry.read_text())
    except (OSError, SyntaxError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(
                isinstance(t, ast.Name) and t.id.endswith("_MODELS") and "PREVIOUSLY" not in t.id for t in node.targets
            )
        ):
            names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return names or None
