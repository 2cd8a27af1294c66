"""``python -m ray_jobs.report RUN_DIR [RUN_DIR2 ...]``: report.html (one self-contained page:
results first, plots, per-task table, sample browser), report.md (for terminals and code review)
and report.json (every number behind them) from the runs' Parquet outputs.

With two or more runs the first is the baseline of the paired comparisons.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ray_jobs import cli
from ray_jobs.metrics.analysis import load_run
from ray_jobs.reporting.compute import compute
from ray_jobs.reporting.html import render_html
from ray_jobs.reporting.markdown import markdown
from ray_jobs.reporting.plots import figures
from ray_jobs.storage import atomic


def write_report(run_dirs: list[Path], output_dir: Path | None = None) -> Path:
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # same directory name in two places: keep them apart
        if names.count(run.name) > 1:
            run.name = f"{run.name}#{i}"
    output_dir = Path(output_dir or run_dirs[0])
    report = compute(runs)
    atomic.write_text(output_dir / "report.md", markdown(report) + "\n")
    atomic.write_text(output_dir / "report.html", render_html(report, figures(report)))
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
