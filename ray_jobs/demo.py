"""`make demo`: the whole pipeline on a tiny random Qwen3 built locally, on CPU vLLM, in a local
Ray started in-process. No weights to download, no GPU. The model is random, so pass@k is 0: the
point is to see every stage run (serve -> generate -> extract -> sandbox -> summary -> report)."""

from __future__ import annotations

import sys
from pathlib import Path

from ray_jobs import cli, console, evaluate
from ray_jobs.tiny_model import build


def main(argv: list[str] | None = None) -> int:
    def job() -> int:
        p = cli.parser("python -m ray_jobs.demo", __doc__)
        p.add_argument("--output-dir", type=Path, default=Path("runs/demo"))
        p.add_argument("--model-dir", type=Path, default=Path(".tiny-model"))
        args = p.parse_args(argv)
        with console.quiet_terminal(args.output_dir / "logs" / "demo.log"):  # transformers' own progress bars
            model = build(args.model_dir, shape="qwen3")
        return evaluate.main(
            [
                "--model",
                str(model),
                "--output-dir",
                str(args.output_dir),
                "--device",
                "cpu",
                "--replicas",
                "2",
                "--limit",
                "8",
                "--num-samples",
                "4",
                "--max-tokens",
                "48",
                "--k",
                "1,2,4",
            ]
        )

    return cli.run_command(job)


if __name__ == "__main__":
    sys.exit(main())
