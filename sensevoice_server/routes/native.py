"""The native REST API: one file, or a batch of files, to structured JSON."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from sensevoice_server.auth import require_api_key
from sensevoice_server.engine import DecodeOptions
from sensevoice_server.errors import BadRequest, ServiceError
from sensevoice_server.routes.common import TranscriberDep, log_result, read_upload
from sensevoice_server.schemas import (
    ERROR_RESPONSES,
    BatchItemOut,
    BatchOut,
    ErrorBody,
    TranscriptionOut,
)
from sensevoice_server.settings import Language

router = APIRouter(prefix="/api", tags=["transcription"], dependencies=[Depends(require_api_key)])

LanguageForm = Annotated[Language, Form(description="Spoken language, or auto to detect it.")]
ItnForm = Annotated[bool, Form(description="Inverse text normalisation: punctuation, numbers.")]


@router.post(
    "/transcribe",
    summary="Transcribe one audio file",
    response_model=TranscriptionOut,
    responses=ERROR_RESPONSES,
)
async def transcribe(
    request: Request,
    transcriber: TranscriberDep,
    file: Annotated[UploadFile, File(description="Audio: WAV, MP3, M4A, OGG, FLAC, WebM...")],
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
) -> TranscriptionOut:
    data = await read_upload(file, transcriber.limits)
    result = await transcriber.transcribe(data, DecodeOptions(language, use_itn))
    log_result(request, result)
    return TranscriptionOut.of(result)


@router.post(
    "/batch",
    summary="Transcribe several files; each is answered separately, in input order",
    response_model=BatchOut,
    responses=ERROR_RESPONSES,
)
async def batch(
    transcriber: TranscriberDep,
    files: Annotated[list[UploadFile], File(description="Audio files, one part each.")],
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
) -> BatchOut:
    limit = transcriber.settings.max_batch_files
    if len(files) > limit:
        raise BadRequest(f"A batch may hold at most {limit} files; this one has {len(files)}.")
    options = DecodeOptions(language, use_itn)
    uploads: list[bytes | ServiceError] = []
    for file in files:
        try:
            uploads.append(await read_upload(file, transcriber.limits))
        except ServiceError as error:
            uploads.append(error)
    # Every file is looked up first; only the misses go to the engine.
    cached = [
        None if isinstance(data, ServiceError) else await transcriber.lookup(data, options)
        for data in uploads
    ]
    # Two misses in flight keep the worker fed (one decoding while the other runs) without
    # filling the engine queue that other users share.
    gate = asyncio.Semaphore(2)

    async def one(index: int) -> BatchItemOut:
        name, data, hit = files[index].filename, uploads[index], cached[index]
        try:
            if isinstance(data, ServiceError):
                raise data
            if hit is None:
                async with gate:
                    hit = await transcriber.transcribe(data, options, looked_up=True)
        except ServiceError as error:
            return BatchItemOut(index=index, filename=name, status=error.status,
                                error=ErrorBody(message=error.message, code=error.code,
                                                type=error_type(error.status)))  # fmt: skip
        return BatchItemOut(index=index, filename=name, status=200, result=TranscriptionOut.of(hit))

    return BatchOut(results=list(await asyncio.gather(*(one(i) for i in range(len(files))))))


def error_type(status: int) -> str:
    """OpenAI's `type` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"
