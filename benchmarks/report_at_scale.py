"""The whole evaluate job at the mission's scale, against a Serve app that answers instantly: 164
HumanEval tasks x n=200 (32,800 samples), every sample a distinct program (right, wrong or
raising), so that nothing is cheaper than with a real model except generation.

    .venv/bin/python benchmarks/report_at_scale.py [--num-samples 200] [--repeat 1]
    .venv/bin/python benchmarks/report_at_scale.py --num-samples 10 --limit 40 --mixed --screenshot docs/report.png

Prints each stage's seconds (generation dispatch, scoring, the rest of the job: loading, attaching,
summary; the report), the driver's
peak memory, and the report's share of the run without it (the baseline: the same evaluate job
with `report: false`). The goal: the whole run, report included, within 150 s on 2 cores, the
report adding at most 10%, and the driver under 2 GiB. With --screenshot it also renders the
report in headless Chromium (the README's picture; --mixed adds timeouts to the outcomes).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=200)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--mixed", action="store_true", help="some samples loop until their time limit")
    p.add_argument("--screenshot", type=Path)
    p.add_argument("--keep", type=Path, help="keep the run directory here")
    args = p.parse_args()

    import ray
    from ray import serve

    from ray_jobs import evaluate
    from ray_jobs.config import EvalConfig
    from ray_jobs.report import write_report
    from tests.support.scripted_deployment import ScriptedLLM

    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    app = f"instant-{uuid.uuid4().hex[:6]}"
    serve.run(ScriptedLLM.bind(), name=app, route_prefix=None)
    model = "oracle-mixed" if args.mixed else "oracle-distinct"
    rows = []
    try:
        for attempt in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                out = args.keep or Path(tmp) / "run"
                if out.exists():
                    shutil.rmtree(out)
                cfg = EvalConfig.model_validate(
                    {
                        "output_dir": out,
                        "dataset": "humaneval",
                        "limit": args.limit,
                        "k": [1, 10, 100],
                        "model": {"model": "scripted", "served_name": model},
                        "serving": {"app_name": app},
                        "sampling": {"seed": attempt * 100_000},
                        "report": False,
                        "generation": {"num_samples": args.num_samples, "chunk_size": 20},
                    }
                )
                started = time.perf_counter()
                summary = evaluate.run(cfg, progress=False).model_dump(mode="json")
                without_report = time.perf_counter() - started
                started = time.perf_counter()
                html = write_report([out])
                report_s = time.perf_counter() - started
                rows.append(
                    {
                        "samples": summary["samples"],
                        "generation_s": summary["timing"]["generation_s"],
                        "scoring_s": summary["timing"]["scoring_s"],
                        "other_s": without_report - summary["timing"]["generation_s"] - summary["timing"]["scoring_s"],
                        "run_without_report_s": without_report,
                        "report_s": report_s,
                        "html_mb": html.stat().st_size / 2**20,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                if args.screenshot:
                    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
                    subprocess.run(
                        [
                            chromium,
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--hide-scrollbars",
                            f"--user-data-dir={Path(tmp) / 'profile'}",
                            f"--screenshot={args.screenshot.resolve()}",
                            "--window-size=1150,1500",
                            f"file://{html}",
                        ],
                        capture_output=True,
                        timeout=120,
                    )
                    print(f"screenshot: {args.screenshot}")
    finally:
        serve.delete(app)
        ray.shutdown()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    total = med["run_without_report_s"] + med["report_s"]
    print(f"\n{int(med['samples'])} samples, medians of {len(rows)} run(s)")
    print(f"{'stage':<40}{'seconds':>10}")
    for key in ("generation_s", "scoring_s", "other_s", "report_s"):
        print(f"{key.removesuffix('_s'):<40}{med[key]:>10.1f}")
    print(f"{'baseline: evaluate without the report':<40}{med['run_without_report_s']:>10.1f}")
    print(f"{'evaluate with the report':<40}{total:>10.1f}   ratio {total / med['run_without_report_s']:.3f}x")
    print(f"report.html {med['html_mb']:.1f} MiB; driver peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
