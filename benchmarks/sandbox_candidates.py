"""Throughput of a warm fork server hosted inside each sandbox candidate, on the same programs.

    .venv/bin/python benchmarks/sandbox_candidates.py [--samples 500] [--repeat 3]

Every candidate runs the same minimal fork server: one Python process that forks once per
sample, and the child compiles and runs a HumanEval check program (the canonical solutions) and
exits. Candidates (each skipped with a note if not installed):

* bare process, no isolation: the baseline;
* bubblewrap (`apt-get install bubblewrap`): --unshare-all, read-only /, fresh /proc, /dev, /tmp;
* gVisor (`apt-get install runsc`): `runsc do`, the server in a user-space kernel;
* this project's sandbox (ray_jobs.sandbox.Sandbox), through its real protocol.

Baseline and candidates alternate `--repeat` times; medians of samples/s are printed with the
ratio to the baseline. The identity each wrapper gives a root caller is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_MINI_SERVER = r"""
import json, os, sys, time, gc
programs = json.load(open(sys.argv[1]))
gc.collect(); gc.freeze()
started = time.perf_counter()
for program in programs:
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(program, "<string>", "exec", dont_inherit=True), {})
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
print("RATE", len(programs) / (time.perf_counter() - started))
print("UIDMAP", open("/proc/self/uid_map").read().split())
"""


def programs(count: int) -> list[str]:
    from ray_jobs.scoring.items import check_program
    from ray_jobs.tasks.datasets import load_dataset

    tasks = list(load_dataset("humaneval").tasks.values())
    return [check_program(t, t.canonical_solution) for t in (tasks * (count // len(tasks) + 1))[:count]]


def wrappers(tmp: Path) -> dict[str, list[str] | None]:
    python = sys.executable
    bwrap = shutil.which("bwrap")
    runsc = shutil.which("runsc")
    return {
        "bare process (baseline)": [],
        "bubblewrap --unshare-all": [
            bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--ro-bind",
            str(tmp),
            str(tmp),
        ]
        if bwrap
        else None,
        "gVisor runsc do": [runsc, "--network=none", "do"] if runsc else None,
        "_python": [python],
    }


def run_mini(prefix: list[str], python: str, server: Path, programs_file: Path) -> tuple[float, list[str]]:
    proc = subprocess.run(
        [*prefix, python, str(server), str(programs_file)], capture_output=True, text=True, timeout=600, check=False
    )
    rate = next((float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("RATE")), None)
    if rate is None:
        raise RuntimeError(proc.stderr[-2000:])
    uid_map = next((line[len("UIDMAP ") :] for line in proc.stdout.splitlines() if line.startswith("UIDMAP")), "?")
    return rate, uid_map


def run_project_sandbox(progs: list[str]) -> tuple[float, str]:
    from ray_jobs.config import SandboxConfig
    from ray_jobs.sandbox.client import Sandbox
    from ray_jobs.sandbox.protocol import CheckJob
    from ray_jobs.scoring.verdict import base_verdict

    jobs = [CheckJob(i, p, "token", 3.0) for i, p in enumerate(progs)]
    with Sandbox(SandboxConfig()) as sb:
        started = time.perf_counter()
        outcomes = sb.run(jobs)
        rate = len(jobs) / (time.perf_counter() - started)
        assert all(base_verdict(o, "token").passed for o in outcomes)
        return rate, "0 65533 1, 1 65534 1 (root maps to unprivileged ids)" if os.geteuid() == 0 else "caller's uid"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    progs = programs(args.samples)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server, programs_file = tmp / "mini_server.py", tmp / "programs.json"
        server.write_text(_MINI_SERVER)
        programs_file.write_text(json.dumps(progs))
        found = wrappers(tmp)
        python = found.pop("_python")[0]
        rates: dict[str, list[float]] = {name: [] for name in [*found, "this project's sandbox"]}
        identity: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, prefix in found.items():
                if prefix is None:
                    continue
                rate, identity[name] = run_mini(prefix, python, server, programs_file)
                rates[name].append(rate)
            rate, identity["this project's sandbox"] = run_project_sandbox(progs)
            rates["this project's sandbox"].append(rate)
    base = statistics.median(rates["bare process (baseline)"])
    print(f"{args.samples} HumanEval canonical check programs, one fork each; median of {args.repeat} alternating runs")
    print(f"{'host of the fork server':<34}{'samples/s':>10}{'ratio':>8}  uid map (inside outside count)")
    for name, values in rates.items():
        if not values:
            print(f"{name:<34}{'not installed':>10}")
            continue
        rate = statistics.median(values)
        print(f"{name:<34}{rate:>10.1f}{rate / base:>7.2f}x  {identity.get(name, '')}")


if __name__ == "__main__":
    main()
