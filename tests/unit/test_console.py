"""The terminal shows the job's own lines; everything written to fds 1 and 2 goes to the log."""

import os
import subprocess
import sys

from ray_jobs import console


def test_quiet_terminal_sends_process_output_to_the_log(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    with console.quiet_terminal(log):
        os.write(2, b"ray: a JSON log line\n")
        subprocess.run(
            [sys.executable, "-c", "import sys; print('child stdout'); print('child stderr', file=sys.stderr)"]
        )
        console.say("header for the person")
    print("after")
    out, err = capfd.readouterr()
    assert "header for the person" in err and "after" in out
    assert "JSON log line" not in out + err and "child" not in out + err
    assert "ray: a JSON log line" in log.read_text() and "child stderr" in log.read_text()
    assert console.last_log() == log


def test_progress_off_a_terminal_prints_lines_at_intervals_and_one_final_line(capfd, monkeypatch):
    monkeypatch.setattr(console, "NON_TTY_INTERVAL_S", 0.0)
    with console.Progress("scoring", 4, "sample") as progress:
        for _ in range(4):
            progress.update(1)
    lines = [line for line in capfd.readouterr().err.splitlines() if line]
    assert lines[0].startswith("scoring: 1/4 samples (25%), ") and "ETA" in lines[0]
    assert len(lines) == 4 and lines[-1].startswith("scoring: 4/4 samples (100%) in ")  # none twice at 100%
