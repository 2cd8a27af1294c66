"""The HTML report as a person sees it: rendered by headless Chromium and checked for structure
(tables that are tables, results before plots, a sample browser with readable failures), not
only for decoded images."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from ray_jobs.report import write_report
from ray_jobs.storage import schemas

WRONG = "    return [x for x in numbers if x > threshold]\n"
CODE = "    return sorted(numbers)[:2]\n"


def make_run(root, name: str, pass_every: int | None, tasks: int = 12):
    """A run with n=4: passes, assertion failures, a raising sample and a truncated one per task."""
    run = root / name
    rows, gens = [], []
    for t in range(tasks):
        for c in range(4):
            passed = pass_every is not None and (t + c) % pass_every == 0
            status = "passed" if passed else ("error" if c == 3 else "failed")
            error = ("ZeroDivisionError", "division by zero") if status == "error" else (None, None)
            rows.append(
                {
                    "task_id": f"HumanEval/{t}",
                    "completion_id": c,
                    "suite": "base",
                    "passed": passed,
                    "status": status,
                    "error_type": error[0],
                    "error_message": error[1],
                    "duration_s": 0.01,
                    "config_id": name,
                    "runtime_s": 0.002 * (1 + c) if passed else None,
                    "canonical_runtime_s": 0.002 if passed else None,
                }
            )
            gens.append(
                {
                    "task_id": f"HumanEval/{t}",
                    "completion_id": c,
                    "config_id": name,
                    "response": f"<think>secret reasoning {t}</think>```python\n{CODE if passed else WRONG}```",
                    "completion": CODE if passed else WRONG,
                    "finish_reason": "stop" if c else "length",
                    "prompt_tokens": 50,
                    "completion_tokens": 10 + t + c,
                }
            )
    schemas.write_table(rows, schemas.RESULTS, run / "results" / "shard-a.parquet")
    schemas.write_table(gens, schemas.GENERATIONS, run / "generations" / "shard-a.parquet")
    (run / "summary.json").write_text(
        json.dumps(
            {
                "dataset": "humaneval",
                "model": f"tiny/{name}",
                "num_samples": 4,
                "sampling": {"temperature": 0.7},
                "thinking": False,
            }
        )
    )
    return run


class _TableStructure(HTMLParser):
    """Rows and cells outside any <table> in the raw HTML (a browser would run their text together)."""

    def __init__(self):
        super().__init__()
        self.depth, self.stray = 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
        elif tag in ("tr", "td", "th") and self.depth == 0:
            self.stray += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1


PROBE = """<script>window.addEventListener('load', () => {
  const first = (sel) => document.querySelector(sel);
  const before = (a, b) => !!(a && b && (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING));
  const passCell = [...document.querySelectorAll('table.passk th')].find((th) => th.textContent === 'pass@1');
  const sortable = first('#tasks-1');
  const rateHeader = [...sortable.tHead.rows[0].cells].find((th) => th.textContent.startsWith('pass rate'));
  rateHeader.click();
  const sortedRates = [...sortable.tBodies[0].rows].map((r) => parseFloat(r.cells[rateHeader.cellIndex].dataset.value));
  const failing = [...document.querySelectorAll('#samples .sample.error')][0];
  document.title = 'PROBE ' + JSON.stringify({
    rows: document.querySelectorAll('tr').length,
    images: [...document.images].filter((i) => i.complete && i.naturalWidth > 100).length,
    figures: [...document.querySelectorAll('figure')].map((f) => f.id),
    emptyFigures: [...document.querySelectorAll('figure p.empty')].map((p) => p.textContent),
    titleBeforePlots: before(first('h1'), first('figure img')),
    passBeforePlots: before(passCell, first('figure img')),
    tasksInBrowser: document.querySelectorAll('#samples details.task').length,
    errorText: failing ? failing.querySelector('pre.error').textContent : null,
    codeText: failing ? failing.querySelector('pre.code').textContent : null,
    sortedAscending: sortedRates.every((v, i) => i === 0 || sortedRates[i - 1] <= v),
  });
});</script></body>"""


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is installed by `make setup`"
    return path


def _flags(chromium, tmp_path):
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]


def test_report_reads_as_a_page_in_chromium(tmp_path, chromium):
    a, b = make_run(tmp_path, "baseline", 3), make_run(tmp_path, "candidate", 2)
    html_path = write_report([a, b], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    # n=4: of the report's ks (1, 5, 10, ...) only pass@1 qualifies
    assert "| baseline | base | pass@1 |" in md and "| candidate | base | pass@1 |" in md and "pass@5" not in md
    assert "candidate vs baseline" in md and "Runtime relative to the canonical solution" in md
    page = html_path.read_text()
    structure = _TableStructure()
    structure.feed(page)
    assert structure.stray == 0
    assert "*" not in re.sub(r"<script>.*?</script>|<style>.*?</style>", "", page, flags=re.S)  # no raw markdown

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    dom = subprocess.run(
        [*_flags(chromium, tmp_path), "--dump-dom", f"file://{probe}"], capture_output=True, text=True, timeout=120
    ).stdout
    seen = json.loads(html.unescape(re.search(r"<title>PROBE (.*?)</title>", dom, re.S).group(1)))
    assert seen["rows"] == page.count("<tr")  # the parser kept every row: none was outside a table
    assert seen["titleBeforePlots"] and seen["passBeforePlots"]
    assert seen["figures"] == [
        "plot-passk",
        "plot-outcomes",
        "plot-heatmap",
        "plot-tokens",
        "plot-quality",
        "plot-runtime",
    ]
    # n=4 has only pass@1: that figure is one sentence, not an empty axis; the other five are drawn
    assert seen["images"] == 5 and len(seen["emptyFigures"]) == 1 and "pass@1" in seen["emptyFigures"][0]
    assert seen["tasksInBrowser"] == 24
    assert seen["errorText"] == "ZeroDivisionError division by zero" and "x > threshold" in seen["codeText"]
    assert seen["sortedAscending"]

    shot = tmp_path / "report.png"
    subprocess.run(
        [*_flags(chromium, tmp_path), f"--screenshot={shot}", "--window-size=1200,2400", f"file://{html_path}"],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20_000  # a real page with plots, not a blank one


def test_report_of_a_run_where_nothing_passed_says_so(tmp_path):
    run = make_run(tmp_path, "hopeless", pass_every=None, tasks=3)
    page = write_report([run]).read_text()
    assert "No sample passed with timing recorded" in page
    assert 'id="plot-runtime"' in page and page.count("<img") == 4  # outcomes, heatmap, tokens, quality


def test_report_cli_rejects_a_non_run_dir(tmp_path, capsys):
    from ray_jobs.report import main

    assert main([str(tmp_path)]) == 2 and "no results" in capsys.readouterr().err


def test_report_shows_where_code_was_found_beside_the_raw_response(tmp_path):
    run = make_run(tmp_path, "tagged", 2, tasks=2)
    gens = schemas.read_tables([run / "generations" / "shard-a.parquet"], schemas.GENERATIONS).to_pylist()
    for g in gens:
        g["extracted_from"] = "tag" if g["completion"] == CODE else "none"
        g["completion"] = g["completion"] if g["completion"] == CODE else ""
    schemas.write_table(gens, schemas.GENERATIONS, run / "generations" / "shard-a.parquet")
    summary = json.loads((run / "summary.json").read_text())
    summary["extraction"] = {"rules": "auto", "found": {"fence": 0, "tag": 4, "text": 0, "none": 4}}
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_report([run], tmp_path / "report").read_text()
    assert "fence 0 · tag 4 · text 0 · none 4 (auto extraction)" in page
    assert "code scored, found in an answer tag" in page and "no code found in the response" in page
    assert 'class="pair"' in page and 'pre class="response"' in page  # the code beside the raw response
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Code found (auto extraction): fence 0, tag 4, text 0, none 4." in md
