"""Decode-step sizing of a Qwen3-0.6B-shaped model on one GPU, with torch and transformers only.

    python benchmarks/gpu_decode_sizing.py [--out sizing.json]
    python benchmarks/gpu_decode_sizing.py --device cpu --layers 2 --batches 1 4 --contexts 64   # smoke test

Why this and not vLLM: the GPU machines lent to this project have torch and transformers but no
vLLM and no network, so the engine itself cannot run there. What decides the sizing questions in
docs/performance.md is the cost of one decode step of the real architecture as the number of
sequences in the batch grows, and that needs no trained weights (timing does not depend on
their values) and no engine. Each row times one decode step of transformers' Qwen3 (0.6B shape,
bf16, random weights) over a static KV cache of `context` slots:

* `eager ms`: wall time per step in plain PyTorch, CPU launch overhead included;
* `kernel ms`: the sum of the step's GPU kernel times (torch.profiler), i.e. the step without
  launch gaps;
* `graph ms`: the same step captured once as a CUDA graph and replayed, which removes the launch
  overhead the way vLLM's CUDA graphs do; tokens/s = batch / graph step time is therefore close to
  an upper bound of what an engine reaches with that many running sequences.

The static cache attends over all `context` slots every step, so each row is the cost at that
context length. A bandwidth probe (device-to-device copy) and a prefill row give the ceilings.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen3Config, StaticCache

# Qwen/Qwen3-0.6B's config.json (architecture only; weights are random).
QWEN3_0_6B = {
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Mean seconds per call after two warm-up calls."""
    for _ in range(2):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def copy_bandwidth(device: str, gib: float = 4.0) -> float:
    """Bytes read plus written per second by a device-to-device copy."""
    src = torch.empty(int(gib * 2**30), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, repeats=10)
    return 2 * gib * 2**30 / seconds


def kv_bytes_per_token(cfg: Qwen3Config, dtype: torch.dtype) -> int:
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * torch.finfo(dtype).bits // 8


def prefill_tokens_per_s(model, cfg, device: str, batch: int, length: int) -> float:
    ids = torch.randint(0, cfg.vocab_size, (batch, length), device=device)

    @torch.inference_mode()
    def step():
        model(input_ids=ids, use_cache=False, logits_to_keep=1)

    return batch * length / timed(step, device, repeats=3)


def kernel_seconds(fn, steps: int) -> float:
    """GPU kernel time per call, summed by the profiler: the step's cost with no launch gaps,
    a cross-check of the CUDA-graph time that needs no capture."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    kernels_us = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type.name == "CUDA")
    return kernels_us / 1e6 / steps


def hf_decoder(model, cfg, device: str, batch: int, context: int):
    """One decode step of transformers' Qwen3 over a static cache of `context` slots, all attended."""
    cache = StaticCache(config=cfg, max_cache_len=context)
    ids = torch.randint(0, cfg.vocab_size, (batch, 1), device=device)
    position = torch.tensor([context - 1], device=device)

    @torch.inference_mode()
    def step():
        return model(input_ids=ids, past_key_values=cache, cache_position=position, use_cache=True).logits

    return step


class LeanQwen3:
    """The same decode step written the way inference engines run it: fused QKV and gate-up
    projections, per-head q/k RMSNorm, one SDPA call per layer reading the grouped KV heads in
    place (`enable_gqa`, no mask since every slot is valid), greedy pick over the tied lm_head.
    Rotary embeddings are left out: elementwise work on one token per sequence, far below the
    noise of the rest. Same weight and KV bytes per step as the real model."""

    def __init__(self, cfg: Qwen3Config, device: str, dtype: torch.dtype) -> None:
        self.cfg = cfg
        hidden, heads, kv_heads, dim = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim

        def weight(*shape):
            return torch.randn(*shape, device=device, dtype=dtype) * 0.02

        self.embed = weight(cfg.vocab_size, hidden)
        self.layers = [
            {
                "qkv": weight(hidden, (heads + 2 * kv_heads) * dim),
                "o": weight(heads * dim, hidden),
                "gate_up": weight(hidden, 2 * cfg.intermediate_size),
                "down": weight(cfg.intermediate_size, hidden),
                "norms": [torch.ones(n, device=device, dtype=dtype) for n in (hidden, hidden, dim, dim)],
            }
            for _ in range(cfg.num_hidden_layers)
        ]
        self.final_norm = torch.ones(hidden, device=device, dtype=dtype)

    def parameter_bytes(self) -> int:
        tensors = [self.embed, self.final_norm] + [
            t for layer in self.layers for t in layer.values() if torch.is_tensor(t)
        ]
        tensors += [n for layer in self.layers for n in layer["norms"]]
        return sum(t.numel() * t.element_size() for t in tensors)

    def decoder(self, device: str, batch: int, context: int):
        cfg, rms = self.cfg, torch.nn.functional.rms_norm
        heads, kv_heads, dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        eps = cfg.rms_norm_eps
        shape = (batch, kv_heads, context, dim)
        caches = [
            (
                torch.zeros(shape, device=device, dtype=self.embed.dtype),
                torch.zeros(shape, device=device, dtype=self.embed.dtype),
            )
            for _ in self.layers
        ]
        ids = torch.randint(0, cfg.vocab_size, (batch,), device=device)
        slot = torch.tensor([context - 1], device=device)

        @torch.inference_mode()
        def step():
            x = self.embed[ids]
            for layer, (k_cache, v_cache) in zip(self.layers, caches):
                in_norm, post_norm, q_norm, k_norm = layer["norms"]
                q, k, v = (rms(x, (x.shape[-1],), in_norm, eps) @ layer["qkv"]).split(
                    [heads * dim, kv_heads * dim, kv_heads * dim], dim=-1
                )
                q = rms(q.view(batch, heads, 1, dim), (dim,), q_norm, eps)
                k_cache.index_copy_(2, slot, rms(k.view(batch, kv_heads, 1, dim), (dim,), k_norm, eps))
                v_cache.index_copy_(2, slot, v.view(batch, kv_heads, 1, dim))
                attn = torch.nn.functional.scaled_dot_product_attention(q, k_cache, v_cache, enable_gqa=True)
                x = x + attn.reshape(batch, heads * dim) @ layer["o"]
                gate, up = (rms(x, (x.shape[-1],), post_norm, eps) @ layer["gate_up"]).chunk(2, dim=-1)
                x = x + (torch.nn.functional.silu(gate) * up) @ layer["down"]
            return (rms(x, (x.shape[-1],), self.final_norm, eps) @ self.embed.T).argmax(-1)

        return step


def step_times(step, device: str, repeats: int) -> dict:
    """Eager, profiled-kernel and CUDA-graph seconds per call of `step`."""
    row = {"eager_s": timed(step, device, repeats)}
    if device.startswith("cuda"):
        row["kernel_s"] = kernel_seconds(step, steps=3)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            row["graph_s"] = timed(graph.replay, device, repeats * 3)
        except Exception as exc:  # noqa: BLE001 - a capture failure is reported, the eager row still stands
            row["graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--impl", nargs="+", choices=["hf", "lean"], default=["hf", "lean"])
    p.add_argument("--layers", type=int, default=QWEN3_0_6B["num_hidden_layers"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 128, 256, 512])
    p.add_argument("--contexts", type=int, nargs="+", default=[1024, 4096, 8192])
    p.add_argument("--kv-budget-gib", type=float, default=60.0, help="skip rows whose KV cache is larger")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    dtype, cuda = torch.bfloat16, args.device.startswith("cuda")
    cfg = Qwen3Config(**{**QWEN3_0_6B, "num_hidden_layers": args.layers})
    torch.manual_seed(0)
    per_token = kv_bytes_per_token(cfg, dtype)
    name = torch.cuda.get_device_name() if cuda else args.device
    result = {"device": name, "torch": torch.__version__, "layers": args.layers, "kv_bytes_per_token": per_token}
    if cuda:
        result["copy_bytes_per_s"] = copy_bandwidth(args.device)
    print(f"{name}: torch {torch.__version__}, KV {per_token / 1024:.0f} KiB/token", end="")
    print(f", device copy {result['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + write)" if cuda else "")

    rows = []
    for impl in args.impl:
        if impl == "hf":
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(args.device).eval()
            weight_bytes = sum(t.numel() * t.element_size() for t in model.parameters())  # tied lm_head once
            result["prefill_tokens_per_s"] = prefill_tokens_per_s(
                model, cfg, args.device, batch=8, length=1024 if args.layers > 4 else 64
            )
            print(f"hf prefill (8 sequences, eager): {result['prefill_tokens_per_s']:,.0f} tokens/s")
            make_step = functools.partial(hf_decoder, model, cfg, args.device)
        else:
            model = LeanQwen3(cfg, args.device, dtype)
            weight_bytes = model.parameter_bytes()
            make_step = functools.partial(model.decoder, args.device)
        result[f"{impl}_weight_bytes"] = weight_bytes
        print(f"\n{impl}: weights {weight_bytes / 1e9:.2f} GB")
        print(
            f"{'context':>8}{'batch':>7}{'KV GiB':>8}{'eager ms':>10}{'kernel ms':>11}{'graph ms':>10}"
            f"{'tokens/s':>12}{'vs batch 4':>12}"
        )
        for context in args.contexts:
            base = None
            for batch in args.batches:
                kv_gib = batch * context * per_token / 2**30
                if kv_gib > args.kv_budget_gib:
                    continue
                row = {"impl": impl, "batch": batch, "context": context, "kv_gib": kv_gib}
                row |= step_times(make_step(batch, context), args.device, args.repeats)
                if cuda:
                    torch.cuda.empty_cache()  # the last row's KV cache, before the next one's
                row["tokens_per_s"] = batch / row.get("graph_s", row["eager_s"])
                base = row["tokens_per_s"] if batch == 4 else base
                rows.append(row)
                cells = [f"{row[key] * 1e3:.2f}" if key in row else "-" for key in ("eager_s", "kernel_s", "graph_s")]
                ratio = f"{row['tokens_per_s'] / base:.1f}x" if base else ""
                print(
                    f"{context:>8}{batch:>7}{kv_gib:>8.1f}{cells[0]:>10}{cells[1]:>11}{cells[2]:>10}"
                    f"{row['tokens_per_s']:>12,.0f}{ratio:>12}",
                    flush=True,
                )
                if "graph_error" in row:
                    print(f"    CUDA graph capture failed: {row['graph_error']}")
        del model, make_step
    result["decode"] = rows
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
