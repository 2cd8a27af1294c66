"""Standalone OpenAI-compatible endpoint from the same config: `python -m serve_app.serve`.

    python -m serve_app.serve --model Qwen/Qwen3-0.6B --replicas 2 --port 8000

Replaces `docker run ... vllm/vllm-openai`; any OpenAI client (or the README's curl) can then
sample from it, and `python -m ray_jobs.score --extract` scores what it produced.
"""

from __future__ import annotations

import argparse
import logging
import time

from ray_jobs.config import ModelConfig, ServingConfig
from ray_jobs.ray_runtime import ray_session
from serve_app.app import build_llm_config, check_model_source, resolve_device


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=ModelConfig().model)
    p.add_argument("--served-name")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto")
    p.add_argument("--max-model-len", type=int, default=ServingConfig().max_model_len)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--address")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model = ModelConfig(model=args.model, served_name=args.served_name)
    serving = ServingConfig(replicas=args.replicas, device=args.device, max_model_len=args.max_model_len)
    check_model_source(model)
    with ray_session(args.address, num_cpus=None):
        from ray import serve
        from ray.serve.llm import build_openai_app

        llm_config = build_llm_config(model, serving, resolve_device(serving), max_ongoing_requests=256)
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_openai_app({"llm_configs": [llm_config]}), name="humaneval-openai", route_prefix="/")
        print(f"OpenAI-compatible endpoint: http://{args.host}:{args.port}/v1 (model {model.model_id}); Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.delete("humaneval-openai")


if __name__ == "__main__":
    main()
