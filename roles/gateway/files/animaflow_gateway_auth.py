# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The studio gateway's API keys, as a LiteLLM proxy custom_auth hook (general_settings.custom_auth).

Without its database, LiteLLM knows only its master key and answers any other key with 400 "No connected
db" (a missing one with 500); assistants need a plain 401. The keys file (ANIMAFLOW_GATEWAY_KEYS) maps each
application's name to the sha256 of its key, so the gateway host stores no key in the clear and the logs
name the application (key_alias). Keys are compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from fastapi import HTTPException, Request


def load_keys(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        keys = json.load(handle)
    if not isinstance(keys, dict) or not all(isinstance(v, str) and len(v) == 64 for v in keys.values()):
        raise ValueError(f"{path}: expected {{name: sha256 hex of the key}}")
    return keys


def key_name(api_key: str | None, keys: dict[str, str]) -> str | None:
    """The application whose key this is, else None. Every entry is compared, so the time taken does not
    tell which one matched."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()
    found = None
    for name, expected in keys.items():
        if hmac.compare_digest(digest, expected):
            found = name
    return found if api_key else None


_KEYS = load_keys(os.environ["ANIMAFLOW_GATEWAY_KEYS"]) if "ANIMAFLOW_GATEWAY_KEYS" in os.environ else {}


async def user_api_key_auth(request: Request, api_key: str) -> Any:
    name = key_name(api_key, _KEYS)
    if name is None:
        # An HTTPException becomes LiteLLM's 401 auth_error; any other exception becomes a 500 here.
        raise HTTPException(status_code=401, detail="Invalid or missing API key for the studio gateway.")
    from litellm.proxy._types import UserAPIKeyAuth  # only inside the proxy

    # api_key names the application, never carries the key: LiteLLM puts it in its logs and in the
    # /metrics labels (as hashed_api_key), where the key itself was measured to appear verbatim.
    return UserAPIKeyAuth(api_key=f"animaflow-app:{name}", key_alias=name, user_id=name)
