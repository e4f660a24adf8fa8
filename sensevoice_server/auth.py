"""Optional API keys: when any are configured, /api and /v1 need `Authorization: Bearer <key>`."""

from __future__ import annotations

import secrets

from fastapi import Request

from sensevoice_server.errors import ServiceError


class Unauthorized(ServiceError):
    status = 401
    code = "invalid_api_key"


async def require_api_key(request: Request) -> None:
    """FastAPI dependency; a no-op when no keys are set (SENSEVOICE_API_KEYS)."""
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("Missing API key: send the header 'Authorization: Bearer <key>'.")
    # compare against every key in constant time, so timing says nothing about which matched
    matches = [
        secrets.compare_digest(given.encode(), key.get_secret_value().encode()) for key in keys
    ]
    if not any(matches):
        raise Unauthorized("The API key is not valid.")
