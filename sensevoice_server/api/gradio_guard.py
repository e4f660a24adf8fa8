"""Only files a client uploaded reach the Gradio API's file inputs: no server paths, no URLs.

Gradio's own check (`processing_utils._check_allowed`: "only files in the upload folder")
runs only once `Blocks.has_launched` is true, which `launch()` sets and a mounted app never
does; `app.py` sets it, so Gradio's protection is back where Gradio puts it. Two gaps stay
open even then, and this guard closes them before Gradio reads anything:
- an `http(s)://` "path" is downloaded by the server (SSRF-protected, but of any size);
- a directory inside the upload folder passes the check and answers with its own errno.
One refusal message for every case, so the answer never says whether a path exists.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from gradio.utils import get_upload_folder
from gradio_client.utils import is_file_obj_with_meta, traverse
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensevoice_server.api.gradio_uploads import STAGING

# The Gradio routes whose JSON body carries input data (and so file references).
DATA_ROUTES = re.compile(r"^/gradio_api/(queue/join|call/|call/v2/|run/|api/|stream/)")
REFUSAL = (
    "Only audio uploaded to this server can be transcribed: upload the file first "
    "(POST /gradio_api/upload; gradio_client's handle_file() does it). Server paths and "
    "URLs are refused."
)
MAX_JSON_BYTES = 1_000_000  # an event's JSON holds file references, never the audio itself


def is_uploaded_file(path: object, upload_folder: Path) -> bool:
    """A regular file inside Gradio's upload folder, after following every symlink, and not
    one still being uploaded (api/gradio_uploads.py stages those).

    `os.stat` does not open the file, so a FIFO or a device is refused without blocking.
    """
    if not isinstance(path, str) or "://" in path:
        return False
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(upload_folder) or resolved.is_relative_to(
        upload_folder / STAGING
    ):
        return False
    try:
        return stat.S_ISREG(os.stat(resolved).st_mode)
    except OSError:
        return False


def file_paths(data: Any) -> list[object]:
    """Every `FileData` path in an event's data, found the way Gradio finds them."""
    found: list[object] = []

    def collect(file: dict[str, Any]) -> dict[str, Any]:
        found.append(file.get("path"))
        return file

    traverse(data, collect, is_file_obj_with_meta)
    return found


class GradioInputGuard:
    """ASGI middleware: refuse a Gradio event whose file inputs were not uploaded here."""

    def __init__(self, app: ASGIApp, mount_path: str = "") -> None:
        self.app = app
        self.prefix = mount_path.rstrip("/")
        self.upload_folder = Path(os.path.realpath(get_upload_folder()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(self.prefix)
            or not DATA_ROUTES.match(path[len(self.prefix) :])
        ):
            await self.app(scope, receive, send)
            return
        body, complete = await read_body(receive, MAX_JSON_BYTES)
        if not complete:
            refusal = JSONResponse({"error": "The request body is too large."}, status_code=413)
            await refusal(scope, receive, send)
            return
        if not self._allowed(body):
            await JSONResponse({"error": REFUSAL}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    def _allowed(self, body: bytes) -> bool:
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return True  # not JSON: Gradio refuses it itself, and there is no path in it
        return all(is_uploaded_file(p, self.upload_folder) for p in file_paths(data))


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, or (what was read, False) as soon as it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the client's own messages
    (its disconnect, when it goes)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
