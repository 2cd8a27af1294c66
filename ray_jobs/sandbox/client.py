"""Client side of the fork server: start it, feed it jobs one at a time, respawn it if a sample
takes it down, and run again what only the wall-clock backstop stopped."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ray_jobs.sandbox import cgroups, seeds
from ray_jobs.sandbox.config import SandboxConfig
from ray_jobs.sandbox.protocol import (
    KILL,
    MAX_JOB_BYTES,
    RUN_PREFIX,
    RUN_STREAM,
    Job,
    Op,
    Outcome,
    OutputsJob,
    PreloadMatcher,
    ProtocolError,
    ServerSettings,
    encode_job,
    read_frame,
    read_outcome,
    request,
    write_all,
    write_frame,
)

log = logging.getLogger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_READY_LIMIT = 1 << 16
_F_SETPIPE_SZ = 1031
_ANSWER_MARGIN_S = 30.0
_RESPAWN_MARGIN_S = 60.0  # a fork server's start, on a busy node

# Numeric libraries spawn a thread per core; a sample gets one core's worth.
_THREAD_PINS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)

_warned_layers: set[str] = set()


T = TypeVar("T")


def _keep(index: int, outcome: Outcome) -> Outcome:
    return outcome


# What `Sandbox.run` asks of a job it may stop early: a function of the result text so far (it
# only grows) that is true once the verdict is decided and the sample need not run on.
Watch = Callable[[bytearray], object]


class SandboxError(RuntimeError):
    """The fork server could not be started."""


def scrubbed_environment() -> dict[str, str]:
    """Nothing of the caller's environment (tokens, credentials, cluster addresses) reaches samples."""
    env = {
        # sbin too: ctypes finds libseccomp through ldconfig
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
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


def server_settings(config: SandboxConfig, made: cgroups.SampleCgroups, kill_fd: int = -1) -> ServerSettings:
    return ServerSettings(
        parent_pid=os.getpid(),
        namespaces=config.namespaces,
        sandbox_uid=config.sandbox_uid,
        memory_mb=config.memory_mb,
        file_mb=config.file_mb,
        max_open_files=config.max_open_files,
        scratch_mb=config.scratch_mb,
        max_pids=config.max_pids,
        stdout_cap_bytes=config.stdout_cap_bytes,
        result_cap_bytes=config.result_cap_bytes,
        wall_backstop_factor=config.wall_backstop_factor,
        visible_paths=tuple(str(Path(p).resolve()) for p in config.extra_paths),
        site_packages=None if config.site_packages == "installed" else tuple(config.site_packages),
        preload=tuple(config.preload),
        cgroups=made,
        kill_fd=kill_fd,
        home_seeds=seeds.home_seeds(config.site_packages, scrubbed_environment()),
    )


class Sandbox:
    """One fork server. Not thread-safe: one per scoring worker."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.cgroups = cgroups.SampleCgroups()
        self.layers: dict[str, str] = {}
        self._loaded_inputs: set[str] = set()
        self._inputs: dict[str, list] = {}
        self.restarts = 0
        self.answers = 0  # outcomes read so far: a scoring worker's progress, visible while it works
        self.stopped = 0  # samples stopped early at the client's word
        self._served = 0  # outcomes read from the running server: the sequence number of the next
        self._kill_w: int | None = None
        self._preload = PreloadMatcher(tuple(config.preload))

    def start(self) -> None:
        self.cgroups = cgroups.create(self.config.memory_mb, self.config.max_pids)
        # KILLs travel on a pipe of their own: requests for later jobs may fill stdin ahead of them
        kill_r, self._kill_w = os.pipe()
        os.set_blocking(self._kill_w, False)  # a server that never reads it cannot block us
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ray_jobs.sandbox.server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=scrubbed_environment(),
                cwd="/",
                pass_fds=(kill_r,),
            )
        finally:
            os.close(kill_r)
        self._served = 0
        # room for a shard's worth of requests: the writer thread is then done at once
        fcntl.fcntl(self.proc.stdin.fileno(), _F_SETPIPE_SZ, 1 << 20)
        write_frame(self.proc.stdin.fileno(), pickle.dumps(server_settings(self.config, self.cgroups, kill_r)))
        ready = read_frame(self.proc.stdout.fileno(), _READY_LIMIT)
        if ready is None:
            code = self.proc.wait()
            self.close()
            raise SandboxError(f"sandbox fork server exited with code {code} during start-up (see its stderr above)")
        self.layers = {**self.cgroups.layers, **json.loads(ready)["layers"]}
        warn_degraded(self.layers)
        self._loaded_inputs.clear()

    def close(self) -> None:
        if self._kill_w is not None:
            os.close(self._kill_w)
            self._kill_w = None
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
        cgroups.remove(self.cgroups)
        self.cgroups = cgroups.SampleCgroups()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_inputs(self, key: str, inputs: list) -> None:
        """Plus-suite inputs, sent to the server once and inherited by every forked sample."""
        self._inputs[key] = inputs

    def run(
        self,
        jobs: list[Job],
        judge: Callable[[int, Outcome], T] = _keep,
        watch: Callable[[int], Watch | None] | None = None,
    ) -> list[T]:
        """`judge(i, outcome)` of each job i, in order; by default the outcome itself. The judge
        runs as each outcome arrives, so what a sample wrote is dropped once it is judged: a
        shard's worth of results is never held at once. Jobs are written ahead by a thread while
        outcomes are read, so the server never waits for the next request. A job whose sample
        takes the server down is reported as crashed, the server is respawned and the jobs after
        it are sent again; one stopped only by the wall-clock backstop (the machine starved it,
        its own time never reached the limit) is run again.

        With `watch`, differential jobs stream their result text while they run: `watch(i)` (per
        run of job i) gives a function of the text so far, and once it is true the sample is
        stopped (its verdict is decided: EvalPlus's fail-fast); its outcome then says `stopped`."""
        done: dict[int, T] = {}
        todo = list(range(len(jobs)))
        reruns: Counter[int] = Counter()
        while todo:
            if self.proc is None or self.proc.poll() is not None:
                self.close()
                self.restarts += 1
                self.start()
            batch, todo = todo, []
            requests = {i: self._request(jobs[i], stream=watch is not None) for i in batch}
            for i in batch:
                if requests[i] is None:
                    report = {
                        "type": "JobTooLarge",
                        "message": "the program exceeds the job size limit",
                        "phase": "compile",
                    }
                    done[i] = judge(i, Outcome(id=jobs[i].id, exit_code=0, result=f"E {json.dumps(report)}\n".encode()))
            sent = [i for i in batch if requests[i] is not None]
            writer = threading.Thread(target=self._write_requests, args=([requests[i] for i in sent],), daemon=True)
            writer.start()
            for position, i in enumerate(sent):
                try:
                    watcher = watch(i) if watch is not None and isinstance(jobs[i], OutputsJob) else None
                    outcome = self._read_outcome(jobs[i], watcher)
                    self.answers += 1
                except ProtocolError as exc:  # the sample in flight took the server down
                    log.warning("sandbox fork server failed (%s); respawning it", exc)
                    self.proc.kill()
                    self.proc.wait()
                    done[i] = judge(i, Outcome(id=jobs[i].id, signal="SIGKILL", worker_died=True))
                    todo += sent[position + 1 :]
                    break
                if outcome.backstop and reruns[i] < self.config.backstop_retries and _starved(outcome):
                    reruns[i] += 1
                    log.warning("sample %d was starved past the wall-clock backstop; running it again", jobs[i].id)
                    todo.append(i)
                    continue
                done[i] = judge(i, outcome)
            writer.join()
        return [done[i] for i in range(len(jobs))]

    def _request(self, job: Job, stream: bool = False) -> bytes | None:
        """The frames that run `job` (its task's inputs first, if the server lacks them); None
        for a job over the size limit. `stream`: a differential job's results come as it runs."""
        payload = encode_job(job)
        if len(payload) > MAX_JOB_BYTES:
            return None
        frames = b""
        if isinstance(job, OutputsJob) and job.inputs_key not in self._loaded_inputs:
            inputs = pickle.dumps((job.inputs_key, self._inputs[job.inputs_key]), protocol=pickle.HIGHEST_PROTOCOL)
            frames += request(Op.INPUTS, inputs)
            self._loaded_inputs.add(job.inputs_key)
        mask = self._preload.mask(job.program)
        flags = RUN_STREAM if stream and isinstance(job, OutputsJob) else 0
        return frames + request(Op.RUN, RUN_PREFIX.pack(job.deadline, mask, flags) + payload)

    def _write_requests(self, requests: list[bytes]) -> None:
        try:
            for data in requests:
                write_all(self.proc.stdin.fileno(), data)
        except (BrokenPipeError, OSError):  # the server died: the reader sees it and resends
            pass

    def _read_outcome(self, job: Job, watcher: Watch | None = None) -> Outcome:
        """The server answers within the backstop; past it plus a margin, something holds it in
        the kernel, and the client gives up on it (the last line of defence: no sample can make
        a scoring worker wait forever). A KILL changes nothing of that: a server that ignores it,
        or gets it after the sample ended, answers as it would have anyway."""
        deadline = time.monotonic() + job.deadline * self.config.wall_backstop_factor + _ANSWER_MARGIN_S
        seq, killed = self._served, False

        def on_chunk(text: bytearray) -> None:
            nonlocal killed
            if not killed and watcher(text):
                killed = True
                self._kill(seq)

        outcome = read_outcome(
            self.proc.stdout.fileno(),
            job.id,
            self.config.result_cap_bytes,
            self.config.stdout_cap_bytes,
            deadline,
            on_chunk if watcher is not None else None,
        )
        if outcome is None:
            raise ProtocolError("the fork server died")
        self._served += 1
        self.stopped += outcome.stopped
        return outcome

    def _kill(self, seq: int) -> None:
        """Ask the server to stop sample `seq`; never blocks (a full pipe: the deadline still holds)."""
        try:
            os.write(self._kill_w, KILL.pack(seq))
        except (BlockingIOError, BrokenPipeError):
            pass


def longest_wait_s(config: SandboxConfig, deadline: float) -> float:
    """The longest one job with this deadline can keep `Sandbox.run` from its next answer: every
    run of it (the reruns of a starved sample included) up to the answer deadline, and a respawn."""
    one_run = deadline * config.wall_backstop_factor + _ANSWER_MARGIN_S
    return one_run * (1 + config.backstop_retries) + _RESPAWN_MARGIN_S


def _starved(outcome: Outcome) -> bool:
    """Stopped by the backstop while using little CPU: the machine starved it, so it gets another
    run. One that used its CPU share (a red team's sample faking starvation) does not."""
    return outcome.cpu_s < 0.5 * outcome.wall_s
