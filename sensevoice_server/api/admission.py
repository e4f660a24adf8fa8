"""Admit before working: a transcription request is refused before its body is read when the
model has no room (429) or is not ready (503).

FastAPI parses a multipart body before any dependency or handler runs, so a refusal there
comes after the whole upload arrived and was spooled; this middleware answers from the
engine's state alone. The Transcriber checks again (and reserves) once the body is in: this
is the cheap first look that keeps a flood of refused clients from costing any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from sensevoice_server.api.errors import error_response
from sensevoice_server.errors import ServiceError

Check = Callable[[], ServiceError | None]


class RefuseWhenFull:
    """ASGI middleware: `check()` before reading the body of a POST to `paths`."""

    def __init__(self, app: ASGIApp, check: Check, paths: Iterable[str]) -> None:
        self.app = app
        self.check = check
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            refusal = self.check()
            if refusal is not None:
                headers = {"Connection": "close"}
                await error_response(refusal, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
