"""Who may transcribe: API keys for the HTTP API and the WebSocket, a login for the web UI.

When SENSEVOICE_API_KEYS is set, nothing transcribes anonymously: `/api`, `/v1` and
`DELETE /cache` take `Authorization: Bearer <key>` (this dependency), the WebSocket a Bearer
header or `?api_key=` (browsers cannot set headers there), and the web UI with the Gradio
API behind it a Bearer header or a login cookie (login.py). Keys are compared in constant
time against every key, so timing says nothing about which one matched. A client address
that fails too often must wait (throttle.py); each failure is one WARNING line, which names
the address and never the key or password that was tried.
"""

from __future__ import annotations

from fastapi import Request, WebSocket
from starlette.types import Scope

from sensevoice_server.api.deps import services_of
from sensevoice_server.api.errors import error_response
from sensevoice_server.errors import ServiceError, TooManyFailures, Unauthorized
from sensevoice_server.logs import websocket_denied_on_purpose
from sensevoice_server.settings import Settings


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def client_address(scope: Scope) -> str:
    """The client's address (uvicorn puts X-Forwarded-For's there for a trusted proxy)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def require_api_key(request: Request) -> None:
    """FastAPI dependency; a no-op when no keys are set (SENSEVOICE_API_KEYS)."""
    credentials = services_of(request.app).credentials
    if not credentials.keys_required:
        return
    given = bearer_token(request.headers.get("authorization", ""))
    if not given:
        raise Unauthorized("Missing API key: send the header 'Authorization: Bearer <key>'.")
    if not credentials.check_key(given, client_address(request.scope), request.url.path):
        raise Unauthorized("The API key is not valid.")


SUBPROTOCOL_KEY = "openai-insecure-api-key."  # how OpenAI's browser clients send a key


async def websocket_authorized(websocket: WebSocket, settings: Settings) -> bool:
    """Check the API key before accepting: a Bearer header, or for browsers (which cannot
    set headers on a WebSocket) `?api_key=` or the `openai-insecure-api-key.<key>`
    subprotocol that OpenAI's browser clients offer.

    Mind that proxies and access logs may record query strings (ours hide the key).
    """
    credentials = services_of(websocket.app).credentials
    if not credentials.keys_required:
        return True
    offered = websocket.scope.get("subprotocols") or []
    in_subprotocol = next(
        (p.removeprefix(SUBPROTOCOL_KEY) for p in offered if p.startswith(SUBPROTOCOL_KEY)), None
    )
    given = (bearer_token(websocket.headers.get("authorization", ""))
             or websocket.query_params.get("api_key") or in_subprotocol)  # fmt: skip
    address = client_address(websocket.scope)
    refusal: ServiceError
    try:
        if given and credentials.check_key(given, address, websocket.url.path):
            return True
        refusal = Unauthorized(
            "Missing or invalid API key: send 'Authorization: Bearer <key>' or ?api_key=<key>."
        )
    except TooManyFailures as waiting:
        refusal = waiting
    await deny(websocket, refusal)
    return False


async def deny(websocket: WebSocket, refusal: ServiceError) -> None:
    """Refuse the upgrade with an HTTP answer (its status and Retry-After reach the client)."""
    websocket_denied_on_purpose()  # logs.py: uvicorn would log this refusal as an ERROR
    try:
        await websocket.send_denial_response(error_response(refusal))
    except RuntimeError:  # a server without the ASGI denial-response extension
        await websocket.close(1008, reason=refusal.code)
