"""Admit before working: a transcription request is refused before its body is read when the
model has no room (429), is not ready or is draining (503), or the uploads already in
progress hold their share of bytes (429).

FastAPI parses a multipart body before any dependency or handler runs, so a refusal there
comes after the whole upload arrived and was spooled; this middleware answers from the
engine's state and the request's declared size alone. The Transcriber checks again (and
reserves) once the body is in: this is the cheap first look that keeps a flood of refused
clients from costing any work. Every refusal is answered after the rest of the body has been
read and dropped (refusal.py), so a client still sending sees its status and Retry-After.

An admitted request holds its bytes (its Content-Length, or what has arrived when it sends
chunked) until its answer has gone: many large uploads at once cost disk and memory in
proportion to `max_inflight_upload_mb`, never to how many clients there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from sensevoice_server.admission import BytesHeld
from sensevoice_server.api.refusal import content_length, refuse, refuse_midway
from sensevoice_server.errors import Busy, ServiceError

Check = Callable[[], ServiceError | None]
HoldBytes = Callable[[int], BytesHeld]
"""Hold this many upload bytes for a request; raises Busy when they do not fit."""


class RefuseWhenFull:
    """ASGI middleware for POSTs to `paths`: `check()` and hold the upload's bytes before
    the body is read; the bytes are held until the answer is sent."""

    def __init__(
        self, app: ASGIApp, check: Check, paths: Iterable[str], hold_bytes: HoldBytes
    ) -> None:
        self.app = app
        self.check = check
        self.paths = frozenset(paths)
        self.hold_bytes = hold_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        refusal = self.check()
        declared = content_length(scope)
        if refusal is None:
            try:
                held = self.hold_bytes(declared or 0)
            except Busy as busy:
                refusal = busy
        if refusal is not None:
            await refuse(refusal, scope, receive, send)
            return
        try:
            if declared is not None:
                await self.app(scope, receive, send)
            else:  # chunked: hold the bytes as they arrive

                def grow(received: int) -> Busy | None:
                    try:
                        held.grow_to(received)
                    except Busy as busy:
                        return busy
                    return None

                await refuse_midway(self.app, scope, receive, send, grow, discard=True)
        finally:
            held.release()
