"""Refuse a request so that the client sees the answer, not a connection reset.

HTTP/1.1 clients (httpx and so the batch CLI and OpenAI's SDK, requests, urllib) send the
whole body before they read the answer. A server that answers early and closes with part of
the body still unread makes the kernel reset the connection, and the reset also throws away
the answer waiting in the client's buffer: the client sees a `ReadError` instead of 429 or
503 and its Retry-After, so its retry never runs. (uvicorn closes on `Connection: close`
at once, whatever is left unread.)

So `refuse` reads what is left of the body and drops it (bandwidth, no memory), then answers
and keeps the connection open for the client's next request. The read is bounded: by the
route's body limit (`BodyLimit` stops it there and answers 413 instead) and by
`DISCARD_TIMEOUT_S`, after which the answer goes out with `Connection: close` (a client that
slow then sees a reset, as before). A client that sent `Expect: 100-continue` has sent no
body yet: it gets the answer at once, and is never invited to send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensevoice_server.api.errors import error_response
from sensevoice_server.errors import ServiceError

DISCARD_TIMEOUT_S = 30.0  # a refused client's time to finish sending: 100 MB at 30 Mbit/s

Check = Callable[[int], ServiceError | None]
"""The refusal for a request whose body has reached this many bytes, or None."""


async def refuse(
    error: ServiceError, scope: Scope, receive: Receive, send: Send, *, discard: bool = True
) -> None:
    """Answer `error` to a request whose body the app has not read (or not all of it).

    With `discard`, the rest of the body is read and dropped first, so that a client still
    sending sees the answer; without it (a body over the limit, or already read to its
    end) the answer goes out at once.
    """
    whole = False
    if discard and not expects_continue(scope):
        whole = await discard_body(receive)
    # Kept open for the client's next request, but not by a server that is going away (a
    # 503 while draining): closing after the whole body was read is clean, no reset.
    headers = {} if whole and error.status != 503 else {"Connection": "close"}
    await error_response(error, headers=headers)(scope, receive, send)


async def discard_body(receive: Receive, timeout_s: float = DISCARD_TIMEOUT_S) -> bool:
    """Read the request's body to its end and drop it: True if it ended, False if the
    client left first or took longer than `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


async def refuse_midway(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, check: Check, *, discard: bool
) -> None:
    """Run `app`, refusing the request the moment its body reaches what `check` refuses.

    From then on the app sees the client as gone (it stops reading), whatever it sends is
    dropped, and the refusal is answered instead, after the rest of the body with `discard`
    (unless the app had already begun an answer of its own: a response cannot be taken back).
    """
    received = 0
    refusal: ServiceError | None = None
    body_done = False
    started = False

    async def watched_receive() -> Message:
        nonlocal received, refusal, body_done
        if refusal is not None:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            refusal = check(received)
            if refusal is not None:
                return {"type": "http.disconnect"}  # the app stops reading here
        return message

    async def watched_send(message: Message) -> None:
        nonlocal started
        if refusal is not None:
            return  # the app's answer to a body it never saw whole is not sent
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, watched_receive, watched_send)
    except Exception:
        if refusal is None:
            raise
    if refusal is not None and not started:
        await refuse(refusal, scope, receive, send, discard=discard and not body_done)


def expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers") or []
    )


def content_length(scope: Scope) -> int | None:
    """The declared body size; None when there is none (chunked) or it is not a number."""
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
