"""Optional API keys: when any are configured, /api and /v1 need `Authorization: Bearer <key>`."""

from __future__ import annotations

import secrets

from fastapi import Request
from pydantic import SecretStr

from sensevoice_server.errors import ServiceError


class Unauthorized(ServiceError):
    status = 401
    code = "invalid_api_key"


async def require_api_key(request: Request) -> None:
    """FastAPI dependency; a no-op when no keys are set (SENSEVOICE_API_KEYS)."""
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    given = bearer_token(request.headers.get("authorization", ""))
    if not given:
        raise Unauthorized("Missing API key: send the header 'Authorization: Bearer <key>'.")
    if not valid_key(keys, given):
        raise Unauthorized("The API key is not valid.")


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def valid_key(keys: list[SecretStr], given: str) -> bool:
    """Compare with every key in constant time, so timing says nothing about which matched."""
    matches = [secrets.compare_digest(given.encode(), k.get_secret_value().encode()) for k in keys]
    return any(matches)
