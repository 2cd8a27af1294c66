"""Hostile code against the real sandbox (real kernel namespaces, real processes, no mocks).

Every case asserts the verdict and then that the worker still scores a correct sample."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ray_jobs.config import SandboxConfig
from ray_jobs.groundtruth import TaskOracle
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.verdict import base_verdict, plus_verdict

CHECK = "\n\ndef check(candidate):\n    assert candidate(2) == 4\n\ncheck(double)\n"
GOOD = "def double(x):\n    return 2 * x\n"
SECRET = "rhe-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def sandbox():
    os.environ["RHE_TEST_SECRET"] = SECRET  # must not reach samples
    with Sandbox(SandboxConfig(timeout_s=3.0, memory_mb=1024)) as sb:
        yield sb
    del os.environ["RHE_TEST_SECRET"]


def run_base(sb: Sandbox, body: str, deadline: float = 3.0):
    token = secrets.token_hex(8)
    raw = sb.run([{"id": 0, "mode": "check", "program": body + CHECK, "deadline": deadline, "token": token}])[0]
    return base_verdict(raw, token), raw


def assert_worker_healthy(sb: Sandbox) -> None:
    verdict, _ = run_base(sb, GOOD)
    assert verdict.status == "passed"


def test_all_isolation_layers_are_on_here(sandbox):
    # This machine supports every layer; elsewhere the degraded ones are reported (see test below).
    assert sandbox.layers and all(state == "on" for state in sandbox.layers.values()), sandbox.layers


@pytest.mark.parametrize("exit_code", [
    "import sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "exit()\n",
    "raise SystemExit(0)\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
])
def test_early_exits_never_pass(sandbox, exit_code):
    verdict, _ = run_base(sandbox, GOOD + exit_code)
    assert not verdict.passed
    assert verdict.status in ("error", "crashed")
    assert_worker_healthy(sandbox)


def test_printed_and_forged_verdicts_never_pass(sandbox):
    forged = GOOD.replace("return 2 * x", "return 0") + (
        "print('passed')\nprint('P 0000')\nimport os\nos.write(3, b'P 0000\\n')\nos.write(1, b'P\\n')\n"
    )
    verdict, raw = run_base(sandbox, forged)
    assert verdict.status == "failed"
    assert "passed" in raw["stdout"]


def test_killing_the_parent_leaves_the_worker_alive(sandbox):
    verdict, raw = run_base(sandbox, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + GOOD)
    # In the pid namespace the worker is PID 1, which its descendants cannot signal.
    assert sandbox.proc.poll() is None
    assert_worker_healthy(sandbox)


def test_worker_killed_by_sample_is_respawned_without_namespaces():
    with Sandbox(SandboxConfig(namespaces=False)) as sb:
        assert sb.layers["pid_namespace"].startswith("off")
        jobs = []
        for i, body in enumerate([GOOD, "import os\nos.kill(os.getppid(), 9)\n" + GOOD, GOOD]):
            jobs.append({"id": i, "mode": "check", "program": body + CHECK, "deadline": 3.0, "token": f"t{i}"})
        raws = sb.run(jobs)
        verdicts = [base_verdict(r, f"t{i}") for i, r in enumerate(raws)]
        assert [v.status for v in verdicts] == ["passed", "crashed", "passed"]
        assert sb.restarts == 1


def _host_processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def test_bounded_fork_storm_and_escaped_daemons_are_killed(sandbox):
    marker = f"{31337 + secrets.randbelow(1000)}.5"
    storm = (
        "import os\n"
        "for _ in range(60):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.setsid()\n"  # escapes killpg; the subreaper / pid namespace still gets it
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
    )
    verdict, _ = run_base(sandbox, storm + GOOD)
    assert verdict.status == "passed"  # the sample itself is correct; its children are the issue
    time.sleep(0.2)
    assert _host_processes_with(f"sleep {marker}") == []
    assert_worker_healthy(sandbox)


def test_memory_hog_is_out_of_memory(sandbox):
    verdict, _ = run_base(sandbox, "x = bytearray(8 * 1024 ** 3)\n" + GOOD)
    assert verdict.status == "out_of_memory"
    assert_worker_healthy(sandbox)


def test_loop_ignoring_signals_times_out(sandbox):
    body = ("import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n"
            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n")
    started = time.monotonic()
    verdict, _ = run_base(sandbox, body, deadline=1.0)
    assert verdict.status == "timeout"
    assert time.monotonic() - started < 5
    assert_worker_healthy(sandbox)


def test_deep_recursion_crash(sandbox):
    body = "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)\n"
    verdict, _ = run_base(sandbox, body)
    assert not verdict.passed
    assert (verdict.status, verdict.error_type) in {("crashed", "SIGSEGV"), ("error", "RecursionError"),
                                                   ("out_of_memory", "MemoryError")}
    assert_worker_healthy(sandbox)


def test_stdout_flood_is_capped_and_times_out(sandbox):
    verdict, raw = run_base(sandbox, "while True:\n    print('x' * 4096)\n", deadline=1.0)
    assert verdict.status == "timeout"
    assert raw["stdout_bytes"] > 1_000_000  # it really flooded ...
    assert len(raw["stdout"]) <= sandbox.config.stdout_cap_bytes  # ... and only the cap was kept
    assert_worker_healthy(sandbox)


def test_stdin_read_fails(sandbox):
    verdict, _ = run_base(sandbox, "input()\n" + GOOD)
    assert (verdict.status, verdict.error_type) == ("error", "EOFError")


def test_closing_all_fds_cannot_pass(sandbox):
    verdict, _ = run_base(sandbox, "import os\nos.closerange(0, 4096)\n" + GOOD)
    assert not verdict.passed
    assert_worker_healthy(sandbox)


def test_loopback_listener_is_unreachable(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_try_accept(listener)))
    thread.start()
    body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n" + GOOD
    verdict, _ = run_base(sandbox, body)
    thread.join()
    listener.close()
    assert verdict.status == "error" and verdict.error_type in ("PermissionError", "OSError", "ConnectionRefusedError")
    assert accepted == [False]


def _try_accept(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
        return True
    except OSError:
        return False


def test_environment_secrets_do_not_leak(sandbox):
    assert os.environ["RHE_TEST_SECRET"] == SECRET
    verdict, raw = run_base(sandbox, "import os\nprint(dict(os.environ))\n" + GOOD)
    assert verdict.passed
    assert "PATH" in raw["stdout"] and SECRET not in raw["stdout"]


def test_writes_and_deletes_outside_the_sample_dir_fail(sandbox, tmp_path):
    victim = Path("/var/tmp") / f"rhe-victim-{secrets.token_hex(4)}"
    victim.write_text("keep")
    created = Path("/var/tmp") / f"rhe-created-{secrets.token_hex(4)}"
    try:
        body = (f"import os\ntry:\n    os.remove({str(victim)!r})\nexcept OSError as e:\n    print('rm', e)\n"
                f"try:\n    open({str(created)!r}, 'w').write('x')\nexcept OSError as e:\n    print('w', e)\n"
                "open('scratch.txt', 'w').write('ok')\n" + GOOD)
        verdict, raw = run_base(sandbox, body)
        assert verdict.passed  # writing in its own dir works
        assert victim.read_text() == "keep" and not created.exists()
        assert "Read-only file system" in raw["stdout"]
    finally:
        victim.unlink(missing_ok=True)
        created.unlink(missing_ok=True)


def test_dataset_and_host_tmp_are_invisible(sandbox, tmp_path):
    (tmp_path / "host-file").write_text("x")
    body = ("import os, ray_jobs\nd = os.path.join(os.path.dirname(ray_jobs.__file__), 'data')\n"
            f"print('data', os.listdir(d))\nprint('tmp', os.path.exists({str(tmp_path / 'host-file')!r}))\n" + GOOD)
    verdict, raw = run_base(sandbox, body)
    assert verdict.passed
    assert "data []" in raw["stdout"] or "Permission denied" in raw["stdout"]
    assert "tmp False" in raw["stdout"]


def test_modules_not_preloaded_still_import(sandbox):
    """The interpreter and site-packages stay visible under the private /tmp (CI clones live there)."""
    verdict, raw = run_base(sandbox, "import numpy, fractions, json\nprint(numpy.arange(3).sum())\n" + GOOD)
    assert verdict.passed, verdict


def _double_oracle() -> TaskOracle:
    return TaskOracle("T/0", "double", [[1], [2], [3]], [2, 4, 6], [None, None, None], [1e-4] * 3, 0.0)


def run_plus(sb: Sandbox, body: str):
    oracle = _double_oracle()
    sb.add_inputs("T/0", oracle.inputs)
    raw = sb.run([{"id": 0, "mode": "outputs", "program": body, "entry_point": "double", "inputs_key": "T/0",
                   "time_limits": [1.0] * 3, "deadline": 4.0, "token": "x"}])[0]
    return plus_verdict(raw, oracle)


@pytest.mark.parametrize("forgery", [
    "class Eq:\n    def __eq__(self, other):\n        return True\ndef double(x):\n    return Eq()\n",
    "class I(int):\n    def __eq__(self, other):\n        return True\ndef double(x):\n    return I(0)\n",
    # forged channel: claims "done" (and a base-suite pass) without outputs it cannot know
    "import os\ndef double(x):\n    os.write(3, b'P x\\nD\\n')\n    os._exit(0)\n",
    "import os\nos.write(3, b'D\\n')\nos._exit(0)\n",
])
def test_plus_suite_cannot_be_forged(sandbox, forgery):
    assert run_plus(sandbox, GOOD).passed
    assert not run_plus(sandbox, forgery).passed
