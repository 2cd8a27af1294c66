"""The typed boundary between a scoring worker and its fork server."""

from __future__ import annotations

import os
import time

import pytest

from ray_jobs.sandbox.protocol import (
    OUTCOME_HEADER,
    CheckJob,
    Outcome,
    OutputsJob,
    PreloadMatcher,
    ProtocolError,
    decode_job,
    encode_job,
    read_outcome,
    write_chunk,
    write_outcome,
)


@pytest.mark.parametrize(
    "job",
    [
        CheckJob(7, "def f():\n    return 'é'\n" * 3, "a1b2", 3.0),
        CheckJob(0, "x", "t", 0.5, "evalplus"),
        OutputsJob(3, "def f(x):\n    return x\n", "f", "HumanEval/0", (1.0, 2.5), 4.5),
    ],
)
def test_jobs_survive_the_wire_with_their_types(job):
    back = decode_job(memoryview(encode_job(job)))
    assert back == job and type(back) is type(job)


def test_an_outcome_round_trips_and_gets_its_job_id():
    read_end, write_end = os.pipe()
    outcome = Outcome(
        id=-1,
        timed_out=True,
        exit_code=None,
        wall_s=1.5,
        effective_s=1.0,
        cpu_s=0.9,
        stdout_bytes=5,
        result_truncated=False,
    )
    write_outcome(write_end, outcome, 9, memoryview(b"E {}\n"), memoryview(b"hello"))
    back = read_outcome(read_end, 42, 1 << 16, 1 << 16)
    assert back == Outcome(
        id=42,
        timed_out=True,
        exit_code=None,
        signal="SIGKILL",
        wall_s=1.5,
        effective_s=1.0,
        cpu_s=0.9,
        result=b"E {}\n",
        stdout="hello",
        stdout_bytes=5,
    )


def test_result_chunks_sent_ahead_are_gathered_before_the_outcome():
    read_end, write_end = os.pipe()
    write_chunk(write_end, memoryview(b"O 1\nO "))
    write_chunk(write_end, memoryview(b"2\n"))
    write_outcome(write_end, Outcome(id=-1, exit_code=None, stopped=True), 9, memoryview(b"O 3\n"), memoryview(b"hi"))
    seen = []
    back = read_outcome(read_end, 5, 1 << 16, 1 << 16, on_chunk=lambda text: seen.append(bytes(text)))
    assert seen == [b"O 1\nO ", b"O 1\nO 2\n"]
    assert back.result == b"O 1\nO 2\nO 3\n" and back.stopped and back.stdout == "hi" and back.id == 5


def test_chunks_past_the_result_cap_are_a_protocol_error():
    read_end, write_end = os.pipe()
    for _ in range(3):
        write_chunk(write_end, memoryview(b"x" * 1000))
    with pytest.raises(ProtocolError):
        read_outcome(read_end, 0, 2500, 1 << 16)


def test_an_oversized_outcome_is_a_protocol_error():
    read_end, write_end = os.pipe()
    os.write(write_end, OUTCOME_HEADER.pack(0, 0, 0, 0.0, 0.0, 0.0, 0, 1 << 30, 0))
    with pytest.raises(ProtocolError):
        read_outcome(read_end, 0, 1 << 16, 1 << 16)


def test_a_silent_server_is_given_up_on_at_the_deadline():
    read_end, _write_end = os.pipe()
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="stopped answering"):
        read_outcome(read_end, 0, 1 << 16, 1 << 16, deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 2


def test_preload_mask_names_whole_words_only():
    matcher = PreloadMatcher(("numpy", "multiprocessing"))
    assert matcher.mask("import numpy as np") == 1
    assert matcher.mask("from multiprocessing import Pool\nimport numpy") == 3
    assert matcher.mask("numpyish = 1") == 0
