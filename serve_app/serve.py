"""Standalone OpenAI-compatible endpoint from the same config: `python -m serve_app.serve`.

    python -m serve_app.serve --model Qwen/Qwen3-0.6B --replicas 2 --port 8000

Replaces `docker run ... vllm/vllm-openai`; any OpenAI client (or the README's curl) can then
sample from it, and `python -m ray_jobs.score --extract` scores what it produced.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from ray_jobs.config import ModelConfig, ServingConfig
from ray_jobs.ray_runtime import ray_session
from serve_app.app import ServingError, build_llm_config, delete_app, required_resources, resolve_device, wait_until_running
from serve_app.model_info import ModelSourceError, read_profile

APP_NAME = "humaneval-openai"


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=ModelConfig().model)
    p.add_argument("--served-name")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto")
    p.add_argument("--max-model-len", type=int, help="default: the model's own context limit")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--address")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model = ModelConfig(model=args.model, served_name=args.served_name)
    try:
        profile = read_profile(model.model)  # before anything starts: the model must resolve
        serving = ServingConfig(replicas=args.replicas, device=args.device,
                                max_model_len=args.max_model_len or profile.context_limit)
        # a new local Ray: CPU replicas hold a CPU each for life, and the OpenAI ingress needs one too
        local_cpus = (os.cpu_count() or 2) + serving.replicas * serving.tensor_parallel_size + 1
        with ray_session(args.address, num_cpus=local_cpus):
            from ray import serve
            from ray.serve.llm import build_openai_app

            # after ray.init, which installs its own SIGTERM handler (it aborts the process):
            # `kill` and job stops clean up like Ctrl-C
            signal.signal(signal.SIGTERM, _stop)
            device = resolve_device(serving)
            llm_config = build_llm_config(model, serving, device, max_ongoing_requests=256)
            serve.start(http_options={"host": args.host, "port": args.port})
            # serve.run would wait for RUNNING forever; this waits with a deadline that says what is missing
            serve._run(build_openai_app({"llm_configs": [llm_config]}), name=APP_NAME, route_prefix="/", _blocking=False)
            try:
                wait_until_running(APP_NAME, serving.startup_timeout_s, required_resources(serving, device))
                print(f"OpenAI-compatible endpoint: http://{args.host}:{args.port}/v1 (model {model.model_id}); "
                      "Ctrl-C stops it", flush=True)
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
            finally:
                delete_app(APP_NAME)
    except (ServingError, ModelSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
