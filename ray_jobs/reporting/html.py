"""report.html: one self-contained page (plots inlined, a little inline script, no network),
rendered from the report structure by a Jinja2 template with autoescaping."""

from __future__ import annotations

import jinja2

from ray_jobs.reporting.samples import PER_OUTCOME
from ray_jobs.tasks.benchmarks import BENCHMARKS


def suite_labels(dataset: str) -> dict[str, str]:
    """Each suite with the name papers use for its score (a run of an unknown dataset: bare)."""
    spec = BENCHMARKS.get(dataset)
    names = dict(zip(spec.suites, spec.suite_names)) if spec else {}
    return {suite: f"{suite} ({names[suite]})" if suite in names else suite for suite in ("base", "plus")}


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("ray_jobs.reporting", "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["stage"] = lambda key: key.removesuffix("_s").replace("_", " ")  # serve_start_s -> serve start


# where extraction found a sample's code (generation/extract.py FOUND), as the page says it
FOUND_LABELS = {"fence": "a fenced block", "tag": "an answer tag", "text": "the text", "none": "nothing"}

HEADLINE_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed")


def sampling_text(sampling: dict) -> str:
    return ", ".join(
        f"{key} {sampling[key]['value']}"
        for key in HEADLINE_SAMPLING
        if key in sampling and sampling[key]["value"] is not None
    )


def _title(report: dict) -> tuple[str, str]:
    runs = report["runs"]
    if len(runs) == 1:
        run = next(iter(runs.values()))
        model = run["setup"]["model"] or "samples file"
        return f"ray-humaneval report: {model} on {run['dataset']}", f"{run['tasks']} tasks × n = {run['num_samples']}"
    return f"ray-humaneval report: {len(runs)} runs", "The first run is the baseline of the comparisons."


def render_html(report: dict, figures: list[dict]) -> str:
    title, subtitle = _title(report)
    runs = {
        name: {
            **run,
            "ks": sorted({k for curve in run["pass_at_k"].values() for k in curve}, key=int),
            "suite_labels": suite_labels(run["dataset"]),
            "sampling_text": sampling_text(run["setup"]["sampling"]),
        }
        for name, run in report["runs"].items()
    }
    return _ENV.get_template("report.html.j2").render(
        title=title,
        subtitle=subtitle,
        runs=runs,
        comparisons=report["comparisons"],
        evalplus_average=report["evalplus_average"],
        figures=figures,
        per_outcome=PER_OUTCOME,
        found_labels=FOUND_LABELS,
    )
