"""Standalone OpenAI-compatible endpoint from the same config: `python -m serve_app.serve` (the
documented command, a thin entry that runs this module).

    python -m serve_app.serve --model Qwen/Qwen3-0.6B --replicas 2 --port 8000

Replaces `docker run ... vllm/vllm-openai`; any OpenAI client (or the README's curl) can then
sample from it, and `python -m ray_jobs.score --extract` scores what it produced.
"""

from __future__ import annotations

import sys
import time

from pydantic import Field

from contracts import StrictModel
from ray_jobs import cli, console
from ray_jobs.config import ModelConfig, ServingConfig
from ray_jobs.ray_runtime import local_cpus, ray_session
from serve_app.app import (
    build_llm_config,
    delete_app,
    job_env_vars,
    required_resources,
    resolve_device,
    wait_until_running,
)
from serve_app.model_info import read_profile

APP_NAME = "humaneval-openai"

FLAGS = (
    cli.Flag("--model", "model.model", "Hugging Face id or local path (default Qwen/Qwen3-0.6B)"),
    cli.Flag("--served-name", "model.served_name", "model id on the endpoint"),
    cli.Flag("--replicas", "serving.replicas", options={"type": int}),
    cli.Flag("--device", "serving.device", options={"choices": ["auto", "gpu", "cpu"]}),
    cli.Flag("--max-model-len", "serving.max_model_len", "default: the model's own context limit", {"type": int}),
    cli.Flag("--host", "host"),
    cli.Flag("--port", "port", options={"type": int}),
    cli.Flag("--address", "address", "Ray address; default: RAY_ADDRESS, else a new local Ray"),
)


class EndpointConfig(StrictModel):
    model: ModelConfig = Field(default_factory=ModelConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    address: str | None = None


def serve_forever(cfg: EndpointConfig) -> None:
    profile = read_profile(cfg.model.model)  # before anything starts: the model must resolve
    serving = cfg.serving.model_copy(update={"max_model_len": cfg.serving.max_model_len or profile.context_limit})
    # a new local Ray: the OpenAI ingress holds a CPU beside the replicas
    with ray_session(cfg.address, num_cpus=local_cpus(cfg.address, serving.replica_cpus + 1)):
        from ray import serve
        from ray.serve.llm import build_openai_app

        device = resolve_device(serving)
        llm_config = build_llm_config(cfg.model, serving, device, max_ongoing_requests=256, job_env=job_env_vars())
        serve.start(http_options={"host": cfg.host, "port": cfg.port})
        # serve.run would wait for RUNNING forever; this waits with a deadline that says what is missing
        serve._run(build_openai_app({"llm_configs": [llm_config]}), name=APP_NAME, route_prefix="/", _blocking=False)
        try:
            wait_until_running(
                APP_NAME,
                serving.startup_timeout_s,
                required_resources(serving, device),
                serving.replicas,
                console.replica_bar,
            )
            print(
                f"OpenAI-compatible endpoint: http://{cfg.host}:{cfg.port}/v1 (model {cfg.model.model_id}); "
                "Ctrl-C stops it",
                flush=True,
            )
            while True:
                time.sleep(3600)
        finally:
            delete_app(APP_NAME)


def main(argv: list[str] | None = None) -> int:
    def job() -> int:
        p = cli.parser("python -m serve_app.serve", __doc__)
        cli.add_flags(p, FLAGS)
        p.add_argument("--verbose", action="store_true")
        args = p.parse_args(argv)
        cli.configure_logging(args.verbose)
        serve_forever(cli.build_config(EndpointConfig, args, FLAGS))
        return 0

    # Ctrl-C is this command's normal way to stop
    code = cli.run_command(job)
    return 0 if code == cli.INTERRUPTED else code


if __name__ == "__main__":
    sys.exit(main())
