"""The native REST API: one file, or a batch of files, to structured JSON."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from sensevoice_server.api.auth import require_api_key
from sensevoice_server.api.deps import TranscriberDep
from sensevoice_server.api.errors import error_body
from sensevoice_server.api.schemas import ERROR_RESPONSES, BatchItemOut, BatchOut, TranscriptionOut
from sensevoice_server.api.uploads import (
    log_result,
    one_file_part,
    read_upload,
    unless_client_leaves,
)
from sensevoice_server.errors import BadRequest, NotFound, ServiceError
from sensevoice_server.options import DecodeOptions, Language

router = APIRouter(prefix="/api", tags=["transcription"], dependencies=[Depends(require_api_key)])

LanguageForm = Annotated[Language, Form(description="Spoken language, or auto to detect it.")]
ItnForm = Annotated[bool, Form(description="Inverse text normalisation: punctuation, numbers.")]
WordsForm = Annotated[
    bool, Form(description="Time each word (forced alignment; costs a little more).")
]
AudioFile = Annotated[
    UploadFile,
    File(
        description="Audio: WAV, MP3, M4A, OGG, FLAC, WebM... (not empty).",
        json_schema_extra={"minLength": 1},  # an empty file is refused (400)
    ),
]


@router.post(
    "/transcribe",
    summary="Transcribe one audio file",
    response_model=TranscriptionOut,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(one_file_part)],
)
async def transcribe(
    request: Request,
    transcriber: TranscriberDep,
    file: AudioFile,
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
    word_timestamps: WordsForm = False,
) -> TranscriptionOut:
    data = await read_upload(file, transcriber.limits)
    options = DecodeOptions(language, use_itn, word_timestamps=word_timestamps)
    result = await unless_client_leaves(request, transcriber.transcribe(data, options))
    log_result(request, result)
    return TranscriptionOut.of(result)


@router.post(
    "/batch",
    summary="Transcribe several files; each is answered separately, in input order",
    response_model=BatchOut,
    responses=ERROR_RESPONSES,
)
async def batch(
    request: Request,
    transcriber: TranscriberDep,
    files: Annotated[list[UploadFile], File(description="Audio files, one part each.")],
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
    word_timestamps: WordsForm = False,
) -> BatchOut:
    limit = transcriber.settings.max_batch_files
    if len(files) > limit:
        raise BadRequest(f"A batch may hold at most {limit} files; this one has {len(files)}.")
    options = DecodeOptions(language, use_itn, word_timestamps=word_timestamps)
    results = await unless_client_leaves(request, transcribe_all(transcriber, files, options))
    return BatchOut(results=results)


async def transcribe_all(
    transcriber: TranscriberDep, files: list[UploadFile], options: DecodeOptions
) -> list[BatchItemOut]:
    """Each file on its own (one bad file fails alone), cached ones answered first, at most
    two misses in flight: one decoding while the other runs keeps the model fed without
    filling the queue other users share."""
    uploads: list[bytes | ServiceError] = []
    for file in files:
        try:
            uploads.append(await read_upload(file, transcriber.limits))
        except ServiceError as error:
            uploads.append(error)
    cached = [
        None if isinstance(data, ServiceError) else await transcriber.lookup(data, options)
        for data in uploads
    ]
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
            return BatchItemOut(
                index=index, filename=name, status=error.status, error=error_body(error)
            )
        return BatchItemOut(index=index, filename=name, status=200, result=TranscriptionOut.of(hit))

    return list(await asyncio.gather(*(one(i) for i in range(len(files)))))


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def not_served(path: str) -> None:
    """Unknown /api paths get the API's error shape, not the web UI's catch-all 404."""
    raise NotFound(f"/api/{path[:100]} is not an endpoint of this server (see /docs).")
