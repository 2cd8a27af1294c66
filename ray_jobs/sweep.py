"""``python -m ray_jobs.sweep SWEEP.yaml``: many sampling configurations against models served once.

    output_dir: runs/sweep
    base: {dataset: humaneval, generation: {num_samples: 10}}    # any EvalConfig fields
    matrix:                                                      # dotted EvalConfig paths -> values
      sampling.temperature: [0.2, 0.7]
      prompt.thinking: [false, true]
    models:                                                      # optional: variants served in turn
      - {model: Qwen/Qwen3-0.6B}
      - {model: Qwen/Qwen3-0.6B, quantization: fp8}

Each model variant gets one Serve app; all matrix configs of that variant generate at the same
time against its replicas (one thread each), so the GPUs never idle between configs. Each config
writes its own output dir; a finished one is skipped on rerun. index.json / index.md list them
all, and report.html compares them (the first config is the baseline).
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ray_jobs import cli, config, console, evaluate, watchdog
from ray_jobs.generation import preflight
from ray_jobs.metrics.summary import Summary
from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import load_dataset, task_sort_key

log = logging.getLogger("ray_jobs.sweep")


def _set_path(data: dict, dotted: str, value) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _slug(value) -> str:
    return str(value).lower().replace("/", "_").replace(" ", "")


def expand(sweep: config.SweepConfig) -> list[tuple[int, str, config.EvalConfig]]:
    """(model index, config name, config) for every model variant x matrix combination."""
    matrix = sweep.matrix
    models = sweep.models or [None]
    axes = list(matrix)
    configs = []
    for m, model in enumerate(models):
        for values in itertools.product(*(matrix[a] for a in axes)):
            data = json.loads(json.dumps(sweep.base))
            if model is not None:
                data["model"] = {**data.get("model", {}), **model}
            for axis, value in zip(axes, values):
                _set_path(data, axis, value)
            name = (
                "-".join(
                    [f"m{m}"] * (len(models) > 1) + [f"{a.split('.')[-1]}={_slug(v)}" for a, v in zip(axes, values)]
                )
                or "default"
            )
            data["output_dir"] = str(sweep.output_dir / name)
            try:
                configs.append((m, name, config.EvalConfig.model_validate(data)))
            except ValueError as exc:
                raise config.ConfigError(f"sweep config {name}: {exc}") from None
    return configs


def _summary(cfg: config.EvalConfig) -> Summary | None:
    """The finished run of `cfg` (fitted to its model: its generation id is then the run's)."""
    path = cfg.output_dir / "summary.json"
    if not path.exists():
        return None
    summary = Summary.model_validate_json(path.read_text())
    return summary if summary.config_id == cfg.generation_id() else None


def _fit(cfg: config.EvalConfig) -> tuple[config.EvalConfig, preflight.Fitted]:
    dataset = load_dataset(cfg.dataset)
    tasks = [dataset.tasks[t] for t in sorted(dataset.tasks, key=task_sort_key)[: cfg.limit]]
    fitted = preflight.fit(cfg, tasks)
    return cfg.fitted_to(fitted.max_model_len, fitted.sampling), fitted


def run_sweep(sweep: config.SweepConfig, progress: bool = False, quiet: bool = False) -> dict:
    from ray_jobs.ray_runtime import local_cpus, ray_session
    from ray_jobs.scoring.shared_verdicts import SharedVerdicts
    from serve_app.app import import_serving_stack, serving

    # every configuration is fitted to its model before anything starts: a refusal comes now
    configs = [(m, name, *_fit(cfg)) for m, name, cfg in expand(sweep)]
    import_serving_stack()  # before Ray's threads and ours start: see its doc
    root = sweep.output_dir
    atomic.check_writable(root)
    summaries = {name: _summary(cfg) for _, name, cfg, _ in configs}
    # configurations that score the same dataset in the same sandbox run each distinct program once
    shared: dict[tuple, SharedVerdicts] = {}
    for _, _, cfg, _ in configs:
        if cfg.dedupe:
            shared.setdefault((cfg.dataset, config.config_hash(cfg.sandbox)), SharedVerdicts())
    first = configs[0][2]
    with (
        console.quiet_terminal(root / "logs" / "sweep.log", enabled=quiet),
        watchdog.Watchdog(max(cfg.watchdog_s for _, _, cfg, _ in configs), console.say),
        ray_session(first.address, num_cpus=local_cpus(first.address, first.serving.replica_cpus)),
    ):
        console.say(f"sweep: {len(configs)} configurations of {len({m for m, _, _, _ in configs})} model variant(s)")
        for m in sorted({m for m, _, _, _ in configs}):
            todo = [(name, cfg, fitted) for mi, name, cfg, fitted in configs if mi == m and summaries[name] is None]
            for mi, name, _, _ in configs:
                if mi == m and summaries[name] is not None:
                    log.info("sweep: %s already finished, skipped", name)
            if todo:
                first = todo[0][1]
                in_flight = first.generation.in_flight_per_replica * len(todo)
                # one app serves every configuration of the variant: the longest context any needs
                served = first.serving.model_copy(
                    update={"max_model_len": max(c.serving.max_model_len for _, c, _ in todo)}
                )
                watchdog.enter("serving")
                with serving(first.model, served, 2 * in_flight, console.replica_bar) as app:
                    attached = [
                        (
                            name,
                            cfg.model_copy(
                                update={
                                    "serving": cfg.serving.model_copy(
                                        update={"app_name": app.app_name, "keep_serving": False}
                                    )
                                }
                            ),
                            fitted,
                        )
                        for name, cfg, fitted in todo
                    ]
                    with ThreadPoolExecutor(max_workers=len(attached)) as pool:
                        done = pool.map(
                            lambda item: evaluate.run(
                                item[1],
                                progress=progress,
                                fitted=item[2],
                                shared_verdicts=shared.get((item[1].dataset, config.config_hash(item[1].sandbox))),
                            ),
                            attached,
                        )
                        summaries.update(zip([name for name, _, _ in attached], done))
    index = {
        name: {
            "dir": str(cfg.output_dir),
            "model": cfg.model.model,
            "quantization": cfg.model.quantization,
            "pass_at_k": summaries[name].pass_at_k,
            "config_id": summaries[name].config_id,
        }
        for _, name, cfg, _ in configs
    }
    atomic.write_text(root / "index.json", json.dumps(index, indent=2) + "\n")
    lines = ["# Sweep index", "", "| config | model | pass@k | dir |", "|---|---|---|---|"]
    for name, entry in index.items():
        passk = "; ".join(
            f"{s}: " + ", ".join(f"{k}={v:.4f}" for k, v in ks.items()) for s, ks in entry["pass_at_k"].items()
        )
        lines.append(f"| {name} | {entry['model']} {entry['quantization'] or ''} | {passk} | {entry['dir']} |")
    atomic.write_text(root / "index.md", "\n".join(lines) + "\n")
    from ray_jobs.report import write_report

    write_report([cfg.output_dir for _, _, cfg, _ in configs], root)
    return index


def main(argv: list[str] | None = None) -> int:
    def job() -> int:
        p = cli.parser("python -m ray_jobs.sweep", __doc__)
        p.add_argument("sweep", type=Path)
        p.add_argument("--output-dir", type=Path, help="overrides the sweep file's output_dir")
        p.add_argument("--verbose", action="store_true", help="Ray and vLLM logs on the terminal too")
        args = p.parse_args(argv)
        overrides = {"output_dir": args.output_dir}
        sweep = config.build(config.SweepConfig, args.sweep, overrides, flag_names={"output_dir": "--output-dir"})
        cli.configure_logging(args.verbose)
        index = run_sweep(sweep, progress=True, quiet=not args.verbose)
        print(yaml.safe_dump({k: v["pass_at_k"] for k, v in index.items()}, sort_keys=False))
        print(f"report: {sweep.output_dir / 'report.html'}")
        return 0

    return cli.run_command(job)


if __name__ == "__main__":
    sys.exit(main())
