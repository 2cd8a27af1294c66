"""The report's figures, each with a line on how to read it. A figure with nothing to show is
replaced by one sentence saying why, rather than drawn as empty axes."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullLocator, PercentFormatter  # noqa: E402


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(name: str, title: str, caption: str, fig=None, empty: str | None = None) -> dict:
    return {
        "id": name,
        "title": title,
        "caption": caption,
        "png": _png(fig) if fig is not None else None,
        "empty": empty,
    }


def passk_plot(runs: dict) -> dict:
    title = "pass@k with 95% bootstrap CI over tasks"
    curves = [(name, suite, curve) for name, d in runs.items() for suite, curve in d["pass_at_k"].items()]
    if not any(len(curve) > 1 for _, _, curve in curves):
        return _figure(
            "passk",
            title,
            "",
            empty="Only pass@1 is defined at this n (pass@k needs n ≥ k); the table above has it with its CI.",
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, suite, curve in curves:
        ks = sorted(curve, key=int)
        x = [int(k) for k in ks]
        ax.plot(x, [100 * curve[k]["estimate"] for k in ks], marker="o", label=f"{name} ({suite})")
        ax.fill_between(x, [100 * curve[k]["ci_low"] for k in ks], [100 * curve[k]["ci_high"] for k in ks], alpha=0.2)
    ax.set(xscale="log", xlabel="k (samples drawn per task)", ylabel="pass@k", ylim=(0, 102))
    ks_drawn = sorted({int(k) for _, _, curve in curves for k in curve})
    ax.set_xticks(ks_drawn, [str(k) for k in ks_drawn])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.legend(fontsize=8)
    return _figure(
        "passk",
        title,
        "The chance that at least one of k samples passes, averaged over tasks. A curve "
        "that keeps rising with k means the model can solve more tasks than its pass@1 "
        "shows; shaded bands are 95% CIs from resampling tasks.",
        fig,
    )


OUTCOME_COLOURS = {
    "passed": "#2e9e4f",
    "failed": "#d23f4b",
    "truncated": "#9aa3af",
    "timeout": "#e0a100",
    "syntax_error": "#8e44ad",
    "generation_error": "#34495e",
    "missing_module": "#7f8c8d",
    "out_of_memory": "#a0522d",
    "crashed": "#000000",
    "empty": "#cfd4dc",
}
_ERROR_SHADES = ("#f28e2b", "#ffbe7d", "#e15759", "#ff9d9a", "#b07aa1", "#d4a6c8")


def _colour(label: str, errors_seen: list[str]) -> str:
    if label in OUTCOME_COLOURS:
        return OUTCOME_COLOURS[label]
    errors_seen.append(label)  # exceptions by type: shades of orange and pink
    return _ERROR_SHADES[(len(errors_seen) - 1) % len(_ERROR_SHADES)]


def outcomes_plot(runs: dict) -> dict:
    title = "Outcome of every sample"
    rows = [(f"{name} ({suite})", f) for name, d in runs.items() for suite, f in d["failures"].items()]
    labels = sorted({label for _, f in rows for label in f}, key=lambda s: (s != "passed", s))
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.45 * len(rows)))
    left = np.zeros(len(rows))
    errors_seen: list[str] = []
    for label in labels:
        values = np.array([f.get(label, 0) for _, f in rows], dtype=float)
        ax.barh(
            [r[0] for r in rows], values, left=left, label=label.replace("_", " "), color=_colour(label, errors_seen)
        )
        left += values
    ax.set(xlabel="samples")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.45 - 0.02 * len(rows)))
    return _figure(
        "outcomes",
        title,
        "Each bar splits a run's samples by what happened to them: passed, failed an "
        "assertion, raised (by exception type), timed out, did not parse, or was cut "
        "off at max_tokens (truncated) before it could be scored fairly; missing "
        "module: it imported a package the scorer does not have installed.",
        fig,
    )


def heatmap_plot(runs: dict) -> dict:
    title = "Per-task pass rate"
    names = list(runs)
    tasks = sorted(
        {r["task_id"] for d in runs.values() for r in d["task_rows"]},
        key=lambda t: (t.rsplit("/", 1)[0], int(t.rsplit("/", 1)[1]) if t.rsplit("/", 1)[-1].isdigit() else 0),
    )
    grid = np.full((len(names), len(tasks)), np.nan)
    position = {t: i for i, t in enumerate(tasks)}
    for i, name in enumerate(names):
        suite = runs[name]["suites"][-1]
        for r in runs[name]["task_rows"]:
            grid[i, position[r["task_id"]]] = 100 * r[f"pass_rate_{suite}"]
    fig, ax = plt.subplots(figsize=(min(16, 2 + 0.08 * len(tasks)), 1 + 0.4 * len(names)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set(yticks=range(len(names)), yticklabels=names, xlabel=f"task ({tasks[0]} … {tasks[-1]})" if tasks else "task")
    fig.colorbar(image, ax=ax, fraction=0.03, format=PercentFormatter())
    return _figure(
        "heatmap",
        title,
        "One cell per task and run: the share of its samples that passed (the strictest "
        "suite). Columns dark in every run are tasks no configuration solves; a column "
        "that changes between rows is a task the change gained or lost.",
        fig,
    )


def tokens_plot(runs: dict) -> dict:
    title = "Completion lengths"
    with_tokens = {name: d["tokens"]["token_counts"] for name, d in runs.items() if d["tokens"].get("token_counts")}
    if not with_tokens:
        return _figure(
            "tokens", title, "", empty="No generations in these runs (scored from a samples file), so no token counts."
        )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, counts in with_tokens.items():
        ax.hist(counts, bins=30, alpha=0.5, label=name)
    ax.set(xlabel="completion tokens per sample", ylabel="samples")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    return _figure(
        "tokens",
        title,
        "How long the answers are. A pile-up at the right edge is max_tokens: those "
        "samples were cut off (thinking models need a larger budget).",
        fig,
    )


def quality_plot(runs: dict) -> dict:
    title = "Code quality of the completions"
    panels = [
        (key, label)
        for key, label in (
            ("complexity", "cyclomatic complexity"),
            ("maintainability", "maintainability index (0–100)"),
            ("ruff_violations_per_sample", "ruff findings per program"),
        )
        if any(d["quality"].get(key) for d in runs.values())
    ]
    if not panels:
        return _figure("quality", title, "", empty="No completion parsed as Python, so there is no code to measure.")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, d in runs.items():
            if d["quality"].get(key):
                ax.hist(d["quality"][key], bins=20, alpha=0.5, label=name)
        ax.set(title=label, ylabel="programs")
    axes[0][0].legend(fontsize=7)
    return _figure(
        "quality",
        title,
        "Distributions over distinct programs (prompt + completion): radon's complexity "
        "and maintainability, ruff's findings. Higher complexity and more findings at "
        "equal pass rate mean harder-to-review code.",
        fig,
    )


def runtime_plot(runs: dict) -> dict:
    title = "Runtime relative to the canonical solution"
    timed = [
        (f"{name} ({suite})", r["ratios"])
        for name, d in runs.items()
        for suite, r in d["runtime_vs_canonical"].items()
        if r["samples"]
    ]
    if not timed:
        return _figure(
            "runtime",
            title,
            "",
            empty="No sample passed with timing recorded, so there is no runtime to "
            "compare with the canonical solution.",
        )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, ratios in timed:
        ax.hist(np.log2(ratios), bins=30, alpha=0.5, label=label)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="log2(sample runtime / canonical runtime)", ylabel="passed samples")
    ax.legend(fontsize=8)
    return _figure(
        "runtime",
        title,
        "Passed samples only, on the same inputs as the canonical solution: 0 is as fast, "
        "+1 twice as slow. A long right tail is correct but inefficient code.",
        fig,
    )


def figures(report: dict) -> list[dict]:
    runs = report["runs"]
    return [
        passk_plot(runs),
        outcomes_plot(runs),
        heatmap_plot(runs),
        tokens_plot(runs),
        quality_plot(runs),
        runtime_plot(runs),
    ]
