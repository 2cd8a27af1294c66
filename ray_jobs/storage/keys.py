"""Names of shard files: a hash of what a shard holds, so a rerun finds the shards it finished."""

from __future__ import annotations

import hashlib
import json


def content_key(salt: str, payload: object) -> str:
    """24 hex digits of sha256(salt + JSON of payload): stable across runs and machines."""
    return hashlib.sha256((salt + json.dumps(payload)).encode()).hexdigest()[:24]
