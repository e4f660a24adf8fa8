"""OpenAI-compatible speech to text, so existing OpenAI scripts only change the base URL.

Follows https://platform.openai.com/docs/api-reference/audio/createTranscription ; answers
keep SenseVoice's language, emotion and event tags (rich text in `text`, and per segment in
verbose_json), which OpenAI's own models do not give.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sensevoice_server.api.auth import require_api_key
from sensevoice_server.api.deps import SettingsDep, TranscriberDep
from sensevoice_server.api.errors import quoted
from sensevoice_server.api.schemas import ERROR_RESPONSES, ModelListOut, ModelOut
from sensevoice_server.api.uploads import (
    log_result,
    one_file_part,
    read_upload,
    unless_client_leaves,
)
from sensevoice_server.errors import BadRequest, ModelNotFound, NotFound
from sensevoice_server.options import LANGUAGES, DecodeOptions
from sensevoice_server.service import TranscriptionResult
from sensevoice_server.settings import Settings
from sensevoice_server.subtitles import to_srt, to_vtt

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
# Whisper names languages in full in verbose_json.
LANGUAGE_NAMES = {
    "zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese", "ko": "korean",
    "nospeech": "nospeech",
}  # fmt: skip
STARTED = int(time.time())


@router.get("/models", summary="Models served (OpenAI's list shape)", response_model=ModelListOut)
async def list_models(settings: SettingsDep) -> ModelListOut:
    return ModelListOut(
        data=[
            ModelOut(id=name, created=STARTED, owned_by="sensevoice-server")
            for name in served_names(settings)
        ]
    )


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "json/verbose_json as JSON; text, srt and vtt as plain text.",
            "content": {
                "application/json": {"example": {"text": "Hello, this is a test.😊"}},
                "text/plain": {"example": "Hello, this is a test.😊"},
            },
        },
        404: {"description": "The model name is not served"},
    },
    dependencies=[Depends(one_file_part)],
)
async def create_transcription(
    request: Request,
    transcriber: TranscriberDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(description="The audio file (not empty).", json_schema_extra={"minLength": 1}),
    ],
    model: Annotated[str, Form(min_length=1, description="A name listed by GET /v1/models.")],
    language: Annotated[
        str | None, Form(description="zh, en, yue, ja, ko; empty to detect.")
    ] = None,
    prompt: Annotated[str | None, Form(description="Accepted and ignored.")] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(description="Accepted and ignored.")] = None,
    timestamp_granularities: Annotated[
        list[str] | None,
        Form(alias="timestamp_granularities[]", description="segment (word is not supported)."),
    ] = None,
) -> Response:
    if model not in served_names(settings):
        raise ModelNotFound(
            f"The model {quoted(model)} is not served here; use one of: "
            f"{', '.join(served_names(settings))} (GET /v1/models).",
            param="model",
        )
    if "word" in (timestamp_granularities or []):
        raise BadRequest(
            "Word timestamps are not supported; SenseVoice gives segment timestamps.",
            param="timestamp_granularities",
        )
    options = DecodeOptions(language=parse_language(language), use_itn=True)
    data = await read_upload(file, transcriber.limits)
    result = await unless_client_leaves(request, transcriber.transcribe(data, options))
    log_result(request, result)
    return render(result, response_format)


def served_names(settings: Settings) -> list[str]:
    return [settings.served_model_name, *settings.model_aliases]


def parse_language(language: str | None) -> str:
    if not language:
        return "auto"
    code = language.strip().lower()
    if code not in LANGUAGES:
        raise BadRequest(
            f"Unsupported language {quoted(language)}; use zh, en, yue, ja, ko, or leave it empty.",
            param="language",
        )
    return code


def render(result: TranscriptionResult, response_format: ResponseFormat) -> Response:
    transcript = result.transcript
    if response_format == "json":
        return JSONResponse({"text": transcript.rich_text})
    if response_format == "text":
        return PlainTextResponse(transcript.rich_text)
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    return JSONResponse(verbose_json(result))


def verbose_json(result: TranscriptionResult) -> dict[str, Any]:
    """OpenAI's verbose_json, plus language, emotion and events per segment.

    SenseVoice gives no token log-probabilities, so avg_logprob, compression_ratio and
    no_speech_prob are fixed placeholders kept only for clients that require the fields.
    """
    transcript = result.transcript
    return {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(transcript.language, transcript.language),
        "duration": transcript.duration,
        "text": transcript.rich_text,
        "segments": [
            {
                "id": index,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.rich,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
                "language": s.language,
                "emotion": s.emotion,
                "events": s.events,
            }
            for index, s in enumerate(transcript.segments)
        ],
        "from_cache": result.from_cache,
    }


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def not_served(path: str) -> None:
    """Unknown /v1 paths get OpenAI's error shape, not the web UI's catch-all 404."""
    raise NotFound(f"/v1/{path[:100]} is not an endpoint of this server (see /docs).")
