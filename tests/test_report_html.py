"""The HTML report as a person sees it: rendered by headless Chromium, every plot decoded."""

from __future__ import annotations

import re
import shutil
import subprocess

from ray_jobs.report import write_report
from ray_jobs.storage import schemas


def make_run(root, name: str, pass_every: int):
    run = root / name
    rows, gens = [], []
    for t in range(12):
        for c in range(4):
            passed = (t + c) % pass_every == 0
            rows.append({"task_id": f"HumanEval/{t}", "completion_id": c, "suite": "base", "passed": passed,
                         "status": "passed" if passed else "failed", "error_type": None, "error_message": None,
                         "duration_s": 0.01, "config_id": name, "runtime_s": 0.002 * (1 + c) if passed else None,
                         "canonical_runtime_s": 0.002 if passed else None})
            gens.append({"task_id": f"HumanEval/{t}", "completion_id": c, "config_id": name,
                         "response": "<think>x</think>```python\nreturn 1\n```", "completion": "    return 1\n",
                         "finish_reason": "stop" if c else "length", "prompt_tokens": 50, "completion_tokens": 10 + t + c})
    schemas.write_table(rows, schemas.RESULTS, run / "results" / "shard-a.parquet")
    schemas.write_table(gens, schemas.GENERATIONS, run / "generations" / "shard-a.parquet")
    return run


def test_report_renders_with_all_plots_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by `make setup`"
    a, b = make_run(tmp_path, "baseline", 3), make_run(tmp_path, "candidate", 2)
    html_path = write_report([a, b], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    # n=4: of the report's ks (1, 5, 10, ...) only pass@1 qualifies
    assert "| baseline | base | pass@1 |" in md and "| candidate | base | pass@1 |" in md and "pass@5" not in md
    assert "candidate vs baseline" in md
    assert "Runtime relative to the canonical solution" in md
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => {const imgs = [...document.images];"
        "document.title = 'IMAGES ' + imgs.length + ' DECODED ' + imgs.filter(i => i.complete && i.naturalWidth > 100).length"
        " + ' FIGS ' + [...document.querySelectorAll('figure')].map(f => f.id).join(',');});</script></body>")))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", f"file://{probe}"], capture_output=True, text=True, timeout=120).stdout
    title = re.search(r"<title>(.*?)</title>", dom).group(1)
    assert title.startswith("IMAGES 6 DECODED 6"), title
    for plot in ("passk", "failures", "heatmap", "tokens", "quality", "runtime"):
        assert f"plot-{plot}" in title
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400", f"file://{html_path}"],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a real page with plots, not a blank one


def test_report_cli_rejects_a_non_run_dir(tmp_path, capsys):
    from ray_jobs.report import main

    assert main([str(tmp_path)]) == 2 and "no results" in capsys.readouterr().err
