"""A replica's failure in its own words: the exception a Ray traceback ends with, rather than
Serve's "failed to update the deployments" or a screenful of Ray frames."""

from __future__ import annotations

import re

from contracts import UserError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


class ServingError(UserError, RuntimeError):
    """The model could not be served; the message says why."""


def root_cause(message: str) -> str | None:
    """The last exception a replica's traceback ends with (and the detail lines under it)."""
    lines = _ANSI.sub("", message).splitlines()
    last = max((i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)), default=None)
    if last is None:
        return None
    detail = [
        line.strip()
        for line in lines[last + 1 : last + 3]
        if line.startswith(" ") and not line.strip().startswith(("File ", "^"))
    ]
    return " ".join([lines[last], *detail])[:1500]


def serve_log_dir() -> str:
    """Where the Serve controller writes the replicas' full tracebacks."""
    try:
        import ray

        return f"{ray._private.worker._global_node.get_logs_dir_path()}/serve"
    except Exception:  # not the head node's driver, or a Ray without that attribute
        return "/tmp/ray/session_latest/logs/serve on the head node"


def deploy_failure(app_name: str, app) -> str:
    """Why the app did not come up, in the replica's own words, and where the full log is."""
    causes = [cause for dep in (app.deployments.values() if app else []) if (cause := root_cause(dep.message or ""))]
    reason = causes[0] if causes else (app.message if app else "no status")
    return (
        f"the model's replicas failed to start (Serve app {app_name!r}): {reason}\n"
        f"full log: {serve_log_dir()} (controller_*.log and the replicas' own logs)"
    )
