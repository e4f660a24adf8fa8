"""Request bodies over the limit are refused before they are read, on every route.

A `Content-Length` above the limit gets its 413 at once, without reading a byte of the
body; a chunked (or lying) body is cut off the moment it passes the limit: the app sees the
client as gone, and the client gets the 413 instead of whatever the app would have said.
Starlette and Gradio parse multipart bodies into temporary files as they arrive, so without
this a 300 MB upload to a 2 MB server is received and spooled in full before any refusal.
nginx's `client_max_body_size` (deploy/) is a second line, not the first.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from sensevoice_server.api.refusal import content_length, refuse, refuse_midway
from sensevoice_server.errors import TooLarge

MULTIPART_SLACK = 64 * 1024  # room for the form fields and part headers beside the file

LimitFor = Callable[[str], tuple[int, TooLarge]]
"""The byte limit for a path, and the refusal that names it."""


class BodyLimit:
    """ASGI middleware: at most `limit_for(path)[0]` bytes of body per HTTP request."""

    def __init__(self, app: ASGIApp, limit_for: LimitFor) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, refusal = self.limit_for(scope["path"])
        declared = content_length(scope)
        if declared is not None and declared > limit:
            await refuse(refusal, scope, receive, send, discard=False)
            return

        def over_limit(received: int) -> TooLarge | None:
            return refusal if received > limit else None

        # a body past the limit is not read on: the client sees a reset if it goes on sending
        await refuse_midway(self.app, scope, receive, send, over_limit, discard=False)
