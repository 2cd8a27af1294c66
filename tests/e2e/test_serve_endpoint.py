"""`python -m serve_app.serve`: the README's OpenAI-compatible endpoint, queried as the README does."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_openai_endpoint_answers_the_readme_request_and_stops_cleanly(tiny_model, tmp_path):
    port = free_port()
    # its own local Ray (no RAY_ADDRESS), as on a fresh machine
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serve_app.serve",
            "--model",
            str(tiny_model),
            "--served-name",
            "tiny-qwen3",
            "--device",
            "cpu",
            "--max-model-len",
            "1024",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 400
        while not any("OpenAI-compatible endpoint" in line for line in lines):
            assert proc.poll() is None, "".join(lines[-60:])
            assert time.monotonic() < deadline, "endpoint not up in time:\n" + "".join(lines[-60:])
            time.sleep(1)
        base = f"http://127.0.0.1:{port}/v1"
        with urllib.request.urlopen(f"{base}/models", timeout=30) as response:
            assert "tiny-qwen3" in [m["id"] for m in json.loads(response.read())["data"]]
        reply = post(
            f"{base}/chat/completions",
            {
                "model": "tiny-qwen3",
                "messages": [{"role": "user", "content": "Write a Python function that reverses a string."}],
                "max_tokens": 16,
                "temperature": 0.7,
                "top_p": 0.8,
                "n": 2,
                "chat_template_kwargs": {"enable_thinking": False},
            },
        )
        assert len(reply["choices"]) == 2
        assert all(isinstance(c["message"]["content"], str) for c in reply["choices"])
        assert 0 < reply["usage"]["completion_tokens"] <= 2 * 16
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, "".join(lines[-40:])
    assert any("Deleting app" in line for line in lines), "the app must be deleted on stop"
