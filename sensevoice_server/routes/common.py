"""What every transcription route shares: the Transcriber, bounded upload reading, log fields."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile

from sensevoice_server.audio import AudioLimits, check_size, too_large
from sensevoice_server.service import Transcriber, TranscriptionResult

CHUNK = 1 << 20


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
            raise too_large(limits)
        chunks.append(chunk)
    data = b"".join(chunks)
    check_size(len(data), limits)
    return data


def transcriber_of(request: Request) -> Transcriber:
    return request.app.state.transcriber


TranscriberDep = Annotated[Transcriber, Depends(transcriber_of)]


def log_result(request: Request, result: TranscriptionResult) -> None:
    """Hand the request's transcription facts to the access-log line (middleware.py)."""
    request.state.log_fields = {
        "audio_s": result.transcript.duration,
        "processing_ms": round(result.processing_ms, 1),
        "inference_ms": 0.0 if result.from_cache else round(result.inference_ms, 1),
        "queue_wait_ms": round(result.queue_wait_ms, 1),
        "from_cache": result.from_cache,
    }
