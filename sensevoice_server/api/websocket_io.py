"""What every WebSocket route of ours does the same way: sending text, and noticing that the
client has gone (Starlette raises one of several errors for a send on a closed socket;
the live protocols only need to know that nobody is left to tell anything)."""

from __future__ import annotations

from fastapi import WebSocket, WebSocketDisconnect


class ClientGone(Exception):
    """The client closed or dropped the connection: nobody is left to tell anything."""


async def send_text(websocket: WebSocket, text: str) -> None:
    try:
        await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError) as error:
        raise ClientGone from error
