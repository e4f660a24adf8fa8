"""Who may transcribe: API keys for the HTTP API and the WebSocket, a login for the web UI.

When SENSEVOICE_API_KEYS is set, nothing transcribes anonymously: `/api`, `/v1` and
`DELETE /cache` take `Authorization: Bearer <key>` (this dependency), the WebSocket a Bearer
header or `?api_key=` (browsers cannot set headers there), and the web UI with the Gradio
API behind it a Bearer header or a login cookie (login.py). Keys are compared in constant
time against every key, so timing says nothing about which one matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse

from sensevoice_server.errors import Unauthorized
from sensevoice_server.settings import Settings

COOKIE_CONTEXT = b"sensevoice-ui-login-v1"


class Credentials:
    """The secrets of one process: its API keys and the UI's user:password, if any."""

    def __init__(self, settings: Settings) -> None:
        self.keys = [key.get_secret_value() for key in settings.api_keys]
        self.ui_login = settings.ui_auth
        self.ui_public = settings.ui_public

    @property
    def keys_required(self) -> bool:
        return bool(self.keys)

    @property
    def ui_login_required(self) -> bool:
        """The UI asks for a login when it has a password, or keys are set and the operator
        did not open it on purpose (SENSEVOICE_UI_PUBLIC)."""
        return bool(self.ui_login) or (self.keys_required and not self.ui_public)

    def valid_key(self, given: str) -> bool:
        return any_equal(self.keys, given)

    def valid_login(self, user: str, password: str) -> bool:
        """A UI login: an API key as the password (any user name), or user:password."""
        return self.valid_key(password) or (
            self.ui_login is not None and any_equal([self.ui_login], f"{user}:{password}")
        )

    def cookie_for(self, user: str, password: str) -> str:
        """A login cookie derived from the secret that was accepted: it stays valid across
        restarts and replicas, and stops working when that key or password is removed."""
        return cookie_value(password if self.valid_key(password) else f"{user}:{password}")

    def valid_cookie(self, cookie: str) -> bool:
        accepted = [*self.keys, *([self.ui_login] if self.ui_login else [])]
        return any_equal([cookie_value(secret) for secret in accepted], cookie)


def cookie_value(secret: str) -> str:
    return hmac.new(secret.encode(), COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def any_equal(candidates: list[str], given: str) -> bool:
    """Constant-time comparison against every candidate (no early exit)."""
    matches = [secrets.compare_digest(given.encode(), c.encode()) for c in candidates]
    return any(matches)


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def require_api_key(request: Request) -> None:
    """FastAPI dependency; a no-op when no keys are set (SENSEVOICE_API_KEYS)."""
    credentials: Credentials = request.app.state.credentials
    if not credentials.keys_required:
        return
    given = bearer_token(request.headers.get("authorization", ""))
    if not given:
        raise Unauthorized("Missing API key: send the header 'Authorization: Bearer <key>'.")
    if not credentials.valid_key(given):
        raise Unauthorized("The API key is not valid.")


async def websocket_authorized(websocket: WebSocket, settings: Settings) -> bool:
    """Check the API key before accepting: a Bearer header, or `?api_key=` for browsers.

    Mind that proxies and access logs may record query strings (ours hide the key).
    """
    credentials: Credentials = websocket.app.state.credentials
    if not credentials.keys_required:
        return True
    given = bearer_token(websocket.headers.get("authorization", "")) or (
        websocket.query_params.get("api_key")
    )
    if given and credentials.valid_key(given):
        return True
    body = {"error": {"message": "Missing or invalid API key: send 'Authorization: Bearer "
                      "<key>' or ?api_key=<key>.", "type": "authentication_error",
                      "param": None, "code": "invalid_api_key"}}  # fmt: skip
    try:
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await websocket.send_denial_response(response)
    except RuntimeError:  # a server without the ASGI denial-response extension
        await websocket.close(1008, reason="invalid_api_key")
    return False


def describe_access(credentials: Credentials, api_paths: str = "/api, /v1, /ws") -> str:
    """One start-up line on which ways in are open."""
    if not credentials.keys_required and not credentials.ui_login_required:
        return "access: open to anyone who can reach this address (no API keys set)"
    parts = []
    if credentials.keys_required:
        parts.append(f"{api_paths} need an API key")
    else:
        parts.append(f"{api_paths} are open (no API keys set)")
    if credentials.ui_login_required:
        ways = " or ".join(
            w for w, on in (("an API key", credentials.keys_required),
                             ("the UI user:password", bool(credentials.ui_login))) if on
        )  # fmt: skip
        parts.append(f"the web UI and Gradio API need a Bearer key or a login with {ways}")
    else:
        parts.append("the web UI and Gradio API are open to anyone (SENSEVOICE_UI_PUBLIC)")
    return "access: " + "; ".join(parts) + "; /health, /ready, /metrics, /cache/stats are open"
