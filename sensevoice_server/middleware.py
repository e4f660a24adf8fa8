"""ASGI middleware: per-request metrics and one JSON log line, and the early size check.

Pure ASGI (not BaseHTTPMiddleware) so streaming and WebSocket traffic pass through untouched.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensevoice_server.metrics import Metrics

access_log = logging.getLogger("sensevoice_server.access")


class RequestMetrics:
    """Counts requests by route template and status, times them, logs one JSON line each.

    Gradio's own many routes are grouped under the label `gradio`.
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

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = self._route_of(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if route != "gradio" and route not in ("/health", "/ready", "/metrics"):
                fields = scope.get("state", {}).get("log_fields", {})
                access_log.info(
                    json.dumps(
                        {"route": route, "method": scope["method"], "status": status,
                         "ms": round(elapsed * 1000, 1), **fields},
                        ensure_ascii=False,
                    )
                )  # fmt: skip


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
        body = {"error": {"message": f"Method {scope['method']} is not allowed here.",
                          "type": "invalid_request_error", "param": None,
                          "code": "method_not_allowed"}}  # fmt: skip
        response = JSONResponse(
            body, status_code=405, headers={"Allow": ", ".join(sorted(methods))}
        )
        await response(scope, receive, send)
