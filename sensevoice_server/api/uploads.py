"""Uploaded files as the Transcriber takes them: bounded, one file part per name, spooled to
disk rather than held in memory, names never used as paths."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import BinaryIO, TypeVar

from fastapi import Request, UploadFile

from sensevoice_server.audio import AudioLimits, check_size
from sensevoice_server.errors import BadRequest, ClientClosedRequest
from sensevoice_server.transcriber import TranscriptionResult

T = TypeVar("T")


def spooled_upload(file: UploadFile, limits: AudioLimits) -> BinaryIO:
    """The upload as Starlette spooled it (in memory up to 1 MB, then an anonymous temporary
    file), checked for size and rewound.

    It is never read whole into memory: the Transcriber hashes and decodes it from the file
    in chunks, so forty 90 MB uploads at once cost disk, not 3.6 GB of memory. The client's
    file name is never used. FastAPI closes (and so deletes) the file after the answer.
    """
    size = file.file.seek(0, os.SEEK_END)
    check_size(size, limits)
    file.file.seek(0)
    return file.file


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
