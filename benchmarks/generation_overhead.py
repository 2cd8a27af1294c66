"""Generation pipeline overhead: `ray_jobs.evaluate` vs bare vLLM `LLM.chat`, same prompts, n, max_tokens.

    .venv/bin/python benchmarks/generation_overhead.py [--tasks 32] [--n 8] [--max-tokens 128] [--repeat 3]
        [--engine-niceness 0 15]

Baseline: one vLLM engine in one process (`LLM.chat` on every task's messages at once), the
best batching vLLM can do. Pipeline: `ray_jobs.evaluate` with one CPU vLLM replica behind Ray
Serve, requests streamed by Ray Data through DeploymentHandles, shards written as they finish.

Both sides get the tiny random Qwen3 (`ray_jobs.tiny_model`), the same engine arguments
(`serve_app.app.engine_kwargs`), the same chat messages (`ray_jobs.generation.prompts.chat_messages`), Qwen3's
non-thinking sampling defaults, `--max-tokens`, and unseeded sampling so both send n>1 requests
(the seeded CPU path sends n=1). The baseline runs in its own process first, so its engine's
memory is free before the pipeline starts. Prints completions/s and tokens/s for each, and the
pipeline's share of the baseline: for the generation stage (engines up) and end to end
(including engine / Serve start-up), and "in-flight": the baseline's time over the pipeline's from
its first request sent to its last answered (the stage without its fixed few seconds of dispatch
start-up, which a long sweep amortises). One run on a small machine varies by about +-10%, so
`--repeat` runs baseline/pipeline pairs alternately and reports the median share over pairs.
The issue's goal: the generation stage keeps >= 80%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def eval_config(model: Path, output_dir: Path, args: argparse.Namespace, engine_niceness: int = 0):
    from ray_jobs.config import EvalConfig

    return EvalConfig.model_validate(
        {
            "output_dir": output_dir,
            "limit": args.tasks,
            "k": [1],
            "report": False,
            "scoring_workers": 1,
            "model": {"model": str(model)},
            "serving": {
                "device": "cpu",
                "replicas": 1,
                "max_model_len": args.max_model_len,
                "engine_niceness": engine_niceness,
            },
            "sampling": {"seed": None, "max_tokens": args.max_tokens},
            "generation": {"num_samples": args.n, "chunk_size": args.n},
        }
    )


def run_bare(model: Path, args: argparse.Namespace) -> dict:
    """The baseline, in this (child) process: one engine, every conversation in one LLM.chat."""
    from vllm import LLM, SamplingParams

    from ray_jobs.generation.preflight import fit
    from ray_jobs.generation.prompts import chat_messages
    from ray_jobs.tasks.datasets import load_dataset, task_sort_key
    from serve_app.app import engine_kwargs

    cfg = eval_config(model, Path("unused"), args)
    dataset = load_dataset(cfg.dataset)
    tasks = [dataset.tasks[t] for t in sorted(dataset.tasks, key=task_sort_key)[: args.tasks]]
    fitted = fit(cfg, tasks)  # the sampling and context the pipeline's run chooses too
    cfg = cfg.fitted_to(fitted.max_model_len, fitted.sampling)
    sampling = cfg.sampling
    params = SamplingParams(
        n=args.n,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        min_p=sampling.min_p,
    )
    t0 = time.perf_counter()
    llm = LLM(model=str(model), **engine_kwargs(cfg.model, cfg.serving, "cpu"))
    t1 = time.perf_counter()
    outputs = llm.chat(
        [chat_messages(task, cfg.prompt) for task in tasks],
        params,
        use_tqdm=False,
        chat_template_kwargs={"enable_thinking": cfg.prompt.thinking},
    )
    t2 = time.perf_counter()
    completions = [c for out in outputs for c in out.outputs]
    return {
        "start_s": t1 - t0,
        "generation_s": t2 - t1,
        "completions": len(completions),
        "tokens": sum(len(c.token_ids) for c in completions),
    }


def run_pipeline(model: Path, args: argparse.Namespace, engine_niceness: int) -> dict:
    from ray_jobs import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        summary = evaluate.run(eval_config(model, Path(tmp) / "run", args, engine_niceness), progress=False).model_dump(
            mode="json"
        )
    gen = summary["generation"]
    return {
        "start_s": summary["timing"]["serve_start_s"],
        "generation_s": summary["timing"]["generation_s"],
        "requests_window_s": gen["replica_utilisation"]["window_s"],
        "completions": gen["samples"] - gen["errors"],
        "tokens": gen["completion_tokens_total"],
    }


def run_bare_in_child(args: argparse.Namespace) -> dict:
    """A fresh process per run, so the baseline's engine memory is free before the pipeline starts."""
    child = subprocess.run(
        [sys.executable, __file__, "--bare-only", *sys.argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
    )
    lines = [line for line in child.stdout.splitlines() if line.startswith("BARE ")]
    if child.returncode or not lines:
        sys.exit(f"bare vLLM baseline failed (exit {child.returncode}):\n{child.stderr[-4000:]}")
    return json.loads(lines[-1][5:])


def shares(bare: dict, run: dict) -> dict[str, float]:
    """`run`'s completions/s as a share of the baseline's (same completions, so a ratio of times)."""
    return {
        "share": bare["generation_s"] / run["generation_s"],
        "e2e": (bare["start_s"] + bare["generation_s"]) / (run["start_s"] + run["generation_s"]),
        # from the first request sent to the last answered: without the job's fixed dispatch start-up
        "in_flight": bare["generation_s"] / run.get("requests_window_s", run["generation_s"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--model-dir", type=Path, default=Path(".tiny-model"))
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="baseline/pipeline pairs, run alternately; shares are reported per pair and as the median",
    )
    p.add_argument(
        "--engine-niceness",
        type=int,
        nargs="+",
        default=[0],
        help="run the pipeline once per value in each pair (serving.engine_niceness; Ray's worker default is 15)",
    )
    p.add_argument("--bare-only", action="store_true", help=argparse.SUPPRESS)  # the baseline's child process
    args = p.parse_args()
    from ray_jobs.tiny_model import build

    model = build(args.model_dir).resolve()
    if args.bare_only:
        print("BARE " + json.dumps(run_bare(model, args)), flush=True)
        return
    pairs = []
    for _ in range(args.repeat):
        bare = run_bare_in_child(args)
        pipes = {nice: run_pipeline(model, args, nice) for nice in args.engine_niceness}
        for pipe in pipes.values():
            if pipe["completions"] != bare["completions"]:
                sys.exit(f"pipeline returned {pipe['completions']} completions, baseline {bare['completions']}: void")
        pairs.append((bare, pipes))

    print(
        f"{args.tasks} tasks x n={args.n} = {pairs[0][0]['completions']} completions, max_tokens "
        f"{args.max_tokens}, tiny Qwen3 on CPU vLLM, {os.cpu_count()} cores"
    )
    print(
        f"{'':<34}{'start s':>9}{'gen s':>9}{'compl/s':>10}{'tokens/s':>10}{'share':>8}{'e2e share':>11}"
        f"{'in-flight share':>17}"
    )
    medians = {nice: {"share": [], "e2e": [], "in_flight": []} for nice in args.engine_niceness}
    for number, (bare, pipes) in enumerate(pairs, 1):
        rows = [(f"#{number} bare vLLM LLM.chat (baseline)", bare)]
        rows += [(f"#{number} ray_jobs.evaluate, nice {nice}", pipe) for nice, pipe in pipes.items()]
        for name, r in rows:
            share = shares(bare, r)
            print(
                f"{name:<34}{r['start_s']:>9.1f}{r['generation_s']:>9.1f}"
                f"{r['completions'] / r['generation_s']:>10.1f}{r['tokens'] / r['generation_s']:>10.0f}"
                f"{share['share']:>7.0%}{share['e2e']:>10.0%}{share['in_flight']:>16.0%}"
            )
        for nice, pipe in pipes.items():
            for key, value in shares(bare, pipe).items():
                medians[nice][key].append(value)
    for nice, values in medians.items():
        print(
            f"median over pairs, engine niceness {nice}: "
            + ", ".join(f"{k} {statistics.median(v):.0%}" for k, v in values.items())
        )


if __name__ == "__main__":
    main()
