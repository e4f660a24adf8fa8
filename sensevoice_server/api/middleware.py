"""Per-request metrics and the access log (one line per request), and 405s for API paths.

Pure ASGI (not BaseHTTPMiddleware) so streaming and WebSocket traffic pass through untouched.
uvicorn's own access log is off (main.py), so each request is logged once, here, with what
the route knew: cache hit, inference time, audio seconds. A refusal raised after its answer
began (Gradio does this) ends that answer with one INFO line instead of a logged traceback.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensevoice_server.api.errors import error_response
from sensevoice_server.errors import MethodNotAllowed
from sensevoice_server.metrics import Metrics

access_log = logging.getLogger("sensevoice_server.access")

# Gradio's page assets and keep-alives: logged at DEBUG only, so INFO shows what users did.
QUIET = re.compile(
    r"^/(assets/|static/|svelte/|favicon|theme\.css|manifest\.json|robots\.txt|"
    r"gradio_api/(heartbeat|queue/data|info|file=|startup-events|upload_progress)|config)"
)
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})  # polled by machines


class RequestLog:
    """Counts requests by route template and status, times them, logs one line each.

    Gradio's many routes are grouped under the metric label `gradio`.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, api_paths: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.api_paths = api_paths

    def _route_of(self, scope: Scope) -> str:
        # The router leaves the matched route in the scope; a template, not the raw path,
        # keeps the label set small.
        path = getattr(scope.get("route"), "path", None)
        return path if path in self.api_paths else "gradio"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        body_done: bool | None = None  # None: no answer begun; False: its body is not done

        async def send_wrapper(message: Message) -> None:
            nonlocal status, body_done
            if message["type"] == "http.response.start":
                status, body_done = message["status"], False
            elif message["type"] == "http.response.body":
                body_done = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as error:
            refusal = late_refusal(error)
            if body_done is not False or refusal is None:
                raise
            access_log.info("%s %s: refused after its answer began (%d %s); ended it there",
                            scope["method"], scope["path"], refusal.status_code,
                            refusal.detail)  # fmt: skip
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            elapsed = time.perf_counter() - started
            route = self._route_of(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            self._log(scope, route, status, elapsed)

    def _log(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        path = scope["path"]
        quiet = route in QUIET_ROUTES or (route == "gradio" and bool(QUIET.match(path)))
        polled = route in QUIET_ROUTES  # machines poll these, answered or not
        level = logging.DEBUG if polled or (quiet and status < 400) else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {"method": scope["method"], "path": path, "status": status,
                                  "ms": round(elapsed * 1000, 1),
                                  **scope.get("state", {}).get("log_fields", {})}  # fmt: skip
        access_log.log(level, access_line(fields), extra={"fields": fields})


def late_refusal(error: BaseException) -> HTTPException | None:
    """A 4xx HTTPException in `error`'s chain: a refusal raised after the answer began.

    The gap: Gradio's event stream (`GET /gradio_api/queue/data`) raises HTTPException(404)
    for an unknown session_hash from inside its streaming body (gradio/routes.py,
    sse_stream), when the 200 has already gone out; Starlette then wraps it in a
    RuntimeError and uvicorn logs an ERROR with two tracebacks, for any anonymous client.
    Gradio has sent its own "session not found" message by then; this ends the body.
    """
    seen: BaseException | None = error
    for _ in range(8):  # a chain is short; a cycle must not loop forever
        if seen is None:
            break
        if isinstance(seen, HTTPException) and 400 <= seen.status_code < 500:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def access_line(fields: dict[str, Any]) -> str:
    """`POST /api/transcribe 200 312.4 ms audio=5.06s cache=miss inference=298.1ms`"""
    line = f"{fields['method']} {fields['path']} {fields['status']} {fields['ms']} ms"
    if "from_cache" in fields:
        line += f" audio={fields['audio_s']}s cache={'hit' if fields['from_cache'] else 'miss'}"
        line += f" inference={fields['inference_ms']}ms queue={fields['queue_wait_ms']}ms"
    return line


class RefuseOtherMethods:
    """Answer 405 for a method an API path does not take.

    Gradio is mounted at `/` and matches every path, so without this Starlette hands
    `TRACE /v1/models` to Gradio, which answers 404 instead of 405.
    """

    def __init__(self, app: ASGIApp, allowed: dict[str, set[str]]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.allowed.get(scope["path"]) if scope["type"] == "http" else None
        if methods is None or scope["method"] in methods:
            await self.app(scope, receive, send)
            return
        refusal = MethodNotAllowed(f"Method {scope['method']} is not allowed here.")
        headers = {"Allow": ", ".join(sorted(methods))}
        await error_response(refusal, headers=headers)(scope, receive, send)
