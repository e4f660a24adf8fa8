"""Uploaded files into bytes: bounded, one file part per name, names never used as paths."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request, UploadFile

from sensevoice_server.audio import AudioLimits, check_size, too_large
from sensevoice_server.errors import BadRequest, ClientClosedRequest
from sensevoice_server.service import TranscriptionResult

CHUNK = 1 << 20
T = TypeVar("T")


async def read_upload(file: UploadFile, limits: AudioLimits) -> bytes:
    """Read an upload into memory, refusing it as soon as it passes the byte limit.

    The client's file name is never used: Starlette spooled the upload to an anonymous
    temporary file and we only read its bytes.
    """
    if file.size is not None:
        check_size(file.size, limits)
    chunks: list[bytes] = []
    total = 0
    while chunk := await file.read(CHUNK):
        total += len(chunk)
        if total > limits.max_bytes:
            raise too_large(limits.max_bytes)
        chunks.append(chunk)
    data = b"".join(chunks)
    check_size(len(data), limits)
    return data


async def one_file_part(request: Request) -> None:
    """Dependency: refuse a second `file` part rather than silently ignore it.

    FastAPI has already parsed the form (Starlette caches it on the request), so this reads
    nothing twice.
    """
    form = await request.form()
    if len(form.getlist("file")) > 1:
        raise BadRequest(
            "Send one file per request in the 'file' field (POST /api/batch takes several, "
            "as 'files').",
            param="file",
        )


def log_result(request: Request, result: TranscriptionResult) -> None:
    """Hand the request's transcription facts to the access-log line (middleware.py)."""
    request.state.log_fields = {
        "audio_s": result.transcript.duration,
        "processing_ms": round(result.processing_ms, 1),
        "inference_ms": 0.0 if result.from_cache else round(result.inference_ms, 1),
        "queue_wait_ms": round(result.queue_wait_ms, 1),
        "from_cache": result.from_cache,
    }


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it the moment the client disconnects.

    Starlette does not cancel a handler whose client is gone, so a long transcription would
    run on for nobody. The body has been read by now, so the next ASGI message is the
    client's disconnect (when it comes).
    """
    task = asyncio.ensure_future(work)

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_left())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientClosedRequest("The client closed the connection; the work was stopped.")
