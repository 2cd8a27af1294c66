"""``python -m ray_jobs.report RUN_DIR [RUN_DIR2 ...]``: report.md, a self-contained report.html
(plots inlined as PNG) and report.json from the runs' Parquet outputs.

With two or more runs the first is the baseline of the paired comparisons.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ray_jobs import cli  # noqa: E402
from ray_jobs.metrics.analysis import (  # noqa: E402
    Run,
    difficulty_table,
    failure_breakdown,
    load_run,
    paired_comparison,
    pass_at_k_with_ci,
    runtime_vs_canonical,
    task_counts,
    token_use,
)
from ray_jobs.metrics.quality import quality_metrics  # noqa: E402
from ray_jobs.storage import atomic  # noqa: E402


def compute(runs: list[Run]) -> dict:
    report = {"runs": {}, "comparisons": []}
    for run in runs:
        codes = []
        if run.generations is not None:
            from ray_jobs.tasks.datasets import load_dataset

            dataset = load_dataset(run.summary.get("dataset", "humaneval"))
            codes = [dataset.tasks[r["task_id"]].prompt + r["completion"]
                     for r in run.generations.select(["task_id", "completion"]).to_pylist()]
        report["runs"][run.name] = {
            "path": str(run.path),
            "pass_at_k": {s: pass_at_k_with_ci(task_counts(run.results, s)) for s in run.suites},
            "failures": {s: failure_breakdown(run, s) for s in run.suites},
            "difficulty": difficulty_table(run),
            "tokens": token_use(run),
            "quality": quality_metrics(codes),
            "runtime_vs_canonical": {s: runtime_vs_canonical(run, s) for s in run.suites},
            "timing": run.summary.get("timing", {}),
            "throughput": throughput(run.summary),
            "setup": setup(run.summary),
        }
    base = runs[0]
    for other in runs[1:]:
        for suite in base.suites:
            if suite in other.suites:
                cmp = paired_comparison(task_counts(base.results, suite), task_counts(other.results, suite))
                report["comparisons"].append({"baseline": base.name, "candidate": other.name, "suite": suite, **cmp})
    return report


def setup(summary: dict) -> dict:
    """The model and the sampling a run used, and where each sampling value came from."""
    sources = summary.get("sampling_sources") or {}
    return {"model": summary.get("model"), "thinking": summary.get("thinking"), "model_fit": summary.get("model_fit"),
            "sampling": {name: {"value": value, "source": sources.get(name, "explicit")}
                         for name, value in (summary.get("sampling") or {}).items()}}


def throughput(summary: dict) -> dict:
    """The summary's rates and per-replica utilisation, where the run generated (not for score-only runs)."""
    gen, scoring = summary.get("generation") or {}, summary.get("scoring") or {}
    return {
        "generation_tokens_per_s": gen.get("tokens_per_s"),
        "generation_samples_per_s": gen.get("samples_per_s"),
        "scoring_samples_per_s": scoring.get("samples_per_s"),
        "replicas": (gen.get("replica_utilisation") or {}).get("replicas", {}),
    }


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(report: dict) -> dict[str, str]:
    runs = report["runs"]
    out = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, data in runs.items():
        for suite, curve in data["pass_at_k"].items():
            ks = sorted(curve, key=int)
            est = [curve[k]["estimate"] for k in ks]
            ax.plot([int(k) for k in ks], est, marker="o", label=f"{name} ({suite})")
            ax.fill_between([int(k) for k in ks], [curve[k]["ci_low"] for k in ks], [curve[k]["ci_high"] for k in ks], alpha=0.2)
    ax.set(xscale="log", xlabel="k", ylabel="pass@k", title="pass@k with 95% bootstrap CI over tasks", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    out["passk"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(runs) * 2))
    labels = sorted({label for d in runs.values() for f in d["failures"].values() for label in f})
    rows = [(f"{name} ({suite})", f) for name, d in runs.items() for suite, f in d["failures"].items()]
    left = np.zeros(len(rows))
    for label in labels:
        values = np.array([f.get(label, 0) for _, f in rows], dtype=float)
        ax.barh([r[0] for r in rows], values, left=left, label=label)
        left += values
    ax.set(xlabel="samples", title="Outcome of every sample")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    out["failures"] = _png(fig)

    names = list(runs)
    tasks = sorted({r["task_id"] for d in runs.values() for r in d["difficulty"]}, key=lambda t: (len(t), t))
    grid = np.full((len(names), len(tasks)), np.nan)
    for i, name in enumerate(names):
        suite = list(runs[name]["pass_at_k"])[-1]
        for r in runs[name]["difficulty"]:
            grid[i, tasks.index(r["task_id"])] = r[f"pass_rate_{suite}"]
    fig, ax = plt.subplots(figsize=(min(16, 2 + 0.08 * len(tasks)), 1 + 0.4 * len(names)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set(yticks=range(len(names)), yticklabels=names, xlabel="task (HumanEval/0 ... )", title="Per-task pass rate")
    fig.colorbar(image, ax=ax, fraction=0.03)
    out["heatmap"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, d in runs.items():
        counts = d["tokens"].get("token_counts") or []
        if counts:
            ax.hist(counts, bins=30, alpha=0.5, label=name)
    ax.set(xlabel="completion tokens per sample", ylabel="samples", title="Token lengths")
    if any(d["tokens"].get("token_counts") for d in runs.values()):
        ax.legend(fontsize=8)
    out["tokens"] = _png(fig)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, key, title in zip(axes, ("complexity", "maintainability", "ruff_violations_per_sample"),
                              ("cyclomatic complexity", "maintainability index", "ruff violations")):
        for name, d in runs.items():
            if d["quality"].get(key):
                ax.hist(d["quality"][key], bins=20, alpha=0.5, label=name)
        ax.set(title=title)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    out["quality"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, d in runs.items():
        for suite, r in d["runtime_vs_canonical"].items():
            if r["samples"]:
                ax.hist(np.log2(r["ratios"]), bins=30, alpha=0.5, label=f"{name} ({suite})")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="log2(sample runtime / canonical runtime), passed samples", ylabel="samples",
           title="Runtime relative to the canonical solution on the same inputs")
    if any(r["samples"] for d in runs.values() for r in d["runtime_vs_canonical"].values()):
        ax.legend(fontsize=8)
    out["runtime"] = _png(fig)
    return out


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row) + " |"
              for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    parts = ["# HumanEval report", ""]
    rows = []
    for name, d in report["runs"].items():
        for suite, curve in d["pass_at_k"].items():
            for k, v in sorted(curve.items(), key=lambda kv: int(kv[0])):
                rows.append([name, suite, f"pass@{k}", v["estimate"], f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}]"])
    parts += ["## pass@k (95% bootstrap CI over tasks)", "", _md_table(["run", "suite", "metric", "estimate", "CI"], rows), ""]
    for c in report["comparisons"]:
        parts += [f"## {c['candidate']} vs {c['baseline']} ({c['suite']})", "",
                  f"Mean per-task pass-rate difference {c['mean_difference']:+.4f} (95% CI [{c['ci_low']:+.4f}, "
                  f"{c['ci_high']:+.4f}], paired bootstrap p = {c['p_bootstrap']:.4f}); {c['tasks_better']} tasks better, "
                  f"{c['tasks_worse']} worse (sign test p = {c['p_sign_test']:.4f}).",
                  f"Gained: {', '.join(c['gained']) or 'none'}. Lost: {', '.join(c['lost']) or 'none'}.", ""]
    for name, d in report["runs"].items():
        parts += [f"## {name}", ""]
        fit, sampling = d["setup"]["model_fit"], d["setup"]["sampling"]
        if sampling:
            parts += ["### Model and sampling", ""]
            if fit and fit["context_limit"]:
                served = fit["max_model_len"] or "by the attached app"
                parts += [f"{d['setup']['model']} ({', '.join(fit['architectures'])}): context {fit['context_limit']} "
                          f"tokens ({fit['context_limit_from']}), served {served}; longest prompt "
                          f"{fit['longest_prompt_tokens']} tokens.", ""]
            parts += [_md_table(["parameter", "value", "from"],
                                [[k, "" if v["value"] is None else str(v["value"]), v["source"]] for k, v in sampling.items()]), ""]
        parts += ["### Outcomes", ""]
        for suite, failures in d["failures"].items():
            parts += [f"*{suite}*: " + ", ".join(f"{k} {v}" for k, v in failures.items()), ""]
        t = d["tokens"]
        if t:
            parts += ["### Token use", "", f"mean {t['tokens_mean']}, median {t['tokens_p50']}, p90 {t['tokens_p90']} tokens; "
                      f"thinking share {t['thinking_share']:.1%}; truncated {t['truncation_rate']:.1%}", ""]
        q = d["quality"]
        if q["samples"]:
            parts += ["### Code quality", "",
                      f"median complexity {np.median(q['complexity']) if q['complexity'] else None}, "
                      f"median maintainability {np.median(q['maintainability']) if q['maintainability'] else None}, "
                      f"median SLOC {np.median(q['sloc']) if q['sloc'] else None}; ruff: "
                      + ", ".join(f"{k} {v}" for k, v in list(q["ruff_by_rule"].items())[:10]), ""]
        if d["timing"]:
            rates = {k: v for k, v in d["throughput"].items() if k != "replicas" and v is not None}
            parts += ["### Stage timings and throughput", "",
                      _md_table(["stage", "seconds"], [[k.removesuffix("_s"), v] for k, v in d["timing"].items()]), "",
                      ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rates.items()), ""]
        if d["throughput"]["replicas"]:
            parts += ["### Replica utilisation (this run's generation window)", "",
                      _md_table(["replica", "requests", "samples", "busy share", "mean in flight", "tokens/s"],
                                [[name, r["requests"], r["samples"], r["busy_share"], r["mean_in_flight"],
                                  r["tokens_per_s"]] for name, r in d["throughput"]["replicas"].items()]), ""]
        timed = [(suite, r) for suite, r in d["runtime_vs_canonical"].items() if r["samples"]]
        if timed:
            parts += ["### Runtime relative to the canonical solution (passed samples)", "",
                      _md_table(["suite", "samples", "median", "p10", "p90", "share over 2x"],
                                [[s, r["samples"], r["median"], r["p10"], r["p90"], r["share_over_2x"]] for s, r in timed]),
                      ""]
        hardest = d["difficulty"][:15]
        if hardest:
            keys = [k for k in hardest[0] if k != "task_id"]
            parts += ["### Hardest tasks", "", _md_table(["task_id", *keys], [[r["task_id"], *[r[k] for k in keys]] for r in hardest]), ""]
    return "\n".join(parts)


def render_html(markdown_text: str, images: dict[str, str]) -> str:
    body = []
    for line in markdown_text.splitlines():
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
            body.append(f"<tr>{cells}</tr>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    text = "\n".join(body).replace("</p>\n<tr>", "</p>\n<table>\n<tr>")
    text = text.replace("</tr>\n<h", "</tr>\n</table>\n<h").replace("</tr>\n<p>", "</tr>\n</table>\n<p>")
    if text.rstrip().endswith("</tr>"):
        text += "\n</table>"
    figures = "\n".join(
        f'<figure id="plot-{name}"><img alt="{name} plot" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'
        for name, data in images.items())
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>HumanEval report</title><style>{style}</style>"
            f"</head><body>{figures}\n{text}</body></html>")


def write_report(run_dirs: list[Path], output_dir: Path | None = None) -> Path:
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # same directory name in two places: keep them apart
        if names.count(run.name) > 1:
            run.name = f"{run.name}#{i}"
    output_dir = Path(output_dir or run_dirs[0])
    report = compute(runs)
    md = markdown(report)
    atomic.write_text(output_dir / "report.md", md + "\n")
    atomic.write_text(output_dir / "report.html", render_html(md, plots(report)))
    atomic.write_text(output_dir / "report.json", json.dumps(report, indent=1, default=float) + "\n")
    return output_dir / "report.html"


def main(argv: list[str] | None = None) -> int:
    def job() -> int:
        p = cli.parser("python -m ray_jobs.report", __doc__)
        p.add_argument("run_dirs", nargs="+", type=Path)
        p.add_argument("--output-dir", type=Path, help="default: the first RUN_DIR")
        args = p.parse_args(argv)
        print(f"wrote {write_report(args.run_dirs, args.output_dir)}")
        return 0

    return cli.run_command(job)


if __name__ == "__main__":
    sys.exit(main())
