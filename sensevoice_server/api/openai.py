"""OpenAI-compatible speech to text, so existing OpenAI scripts only change the base URL.

Follows https://platform.openai.com/docs/api-reference/audio/createTranscription and the
schemas of OpenAI's OpenAPI document (tests/support/openai_schema/): json, text, srt, vtt,
verbose_json (segments and/or words), diarized_json (when speaker labels are on),
`include[]=logprobs` and `stream=true` (server-sent events, api/events.py). Answers keep
SenseVoice's language, emotion and event tags, which OpenAI's own models do not give.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sensevoice_server import formats
from sensevoice_server.api.auth import require_api_key
from sensevoice_server.api.deps import SettingsDep, TranscriberDep
from sensevoice_server.api.errors import quoted
from sensevoice_server.api.events import stream_transcription
from sensevoice_server.api.schemas import (
    ERROR_RESPONSES,
    Document,
    ModelListOut,
    ModelOut,
    form_schema,
)
from sensevoice_server.api.uploads import (
    log_result,
    one_file_part,
    spooled_upload,
    unless_client_leaves,
)
from sensevoice_server.errors import BadRequest, ModelNotFound, NotFound
from sensevoice_server.options import DecodeOptions, Language
from sensevoice_server.service import TranscriptionResult
from sensevoice_server.settings import Settings
from sensevoice_server.subtitles import CueLimits, to_srt, to_vtt

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
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
            "description": "json, verbose_json and diarized_json as JSON; text as plain text; "
            "srt and vtt as subtitles; with stream=true, server-sent events.",
            "content": {
                "application/json": {"example": {"text": "Hello, this is a test.😊"}},
                "text/plain": {"example": "Hello, this is a test.😊"},
                "application/x-subrip": {
                    "example": "1\n00:00:00,230 --> 00:00:02,690\nHello, this is a test.😊\n"
                },
                "text/vtt": {
                    "example": "WEBVTT\n\n00:00:00.230 --> 00:00:02.690\nHello, this is a test.😊\n"
                },
                "text/event-stream": {
                    "example": 'data: {"type": "transcript.text.delta", "delta": "Hello"}'
                },
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
        Language | None,
        Form(
            description="zh, en, yue, ja or ko (ISO-639-1, as OpenAI's); left out, empty or "
            "auto to detect; nospeech (SenseVoice's own)."
        ),
    ] = None,
    prompt: Annotated[str | None, Form(description="Accepted and ignored.")] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(description="Accepted and ignored.")] = None,
    timestamp_granularities: Annotated[
        list[Literal["word", "segment"]] | None,
        Form(
            alias="timestamp_granularities[]",
            description="With verbose_json: word and/or segment (the default).",
        ),
    ] = None,
    include: Annotated[
        list[Literal["logprobs"]] | None,
        Form(alias="include[]", description="logprobs: each token's log-probability (json)."),
    ] = None,
    stream: Annotated[bool, Form(description="Server-sent events as segments decode.")] = False,
    max_line_chars: Annotated[
        int, Form(ge=10, le=200, description="srt/vtt: longest subtitle line.")
    ] = 42,
    max_cue_s: Annotated[
        float, Form(ge=1, le=60, description="srt/vtt: longest subtitle cue, seconds.")
    ] = 7.0,
    subtitle_tags: Annotated[
        bool, Form(description="srt/vtt: keep the emotion and event emoji.")
    ] = True,
) -> Response:
    check_model(model, settings)
    if response_format == "diarized_json" and not settings.speakers:
        raise BadRequest(
            "diarized_json needs speaker labels, which this server has off; start it with "
            "--speakers (SENSEVOICE_SPEAKERS=true).",
            param="response_format",
        )
    granularities = set(timestamp_granularities or ["segment"])
    # subtitles are cut at word times (readable cues need them) unless only segment times
    # were asked for; other formats align words only when asked
    subtitles = response_format in ("srt", "vtt")
    words = (subtitles and not timestamp_granularities) or "word" in granularities
    options = DecodeOptions(
        language=language or "auto", use_itn=True, word_timestamps=words,
        logprobs="logprobs" in (include or []),
    )  # fmt: skip
    data = spooled_upload(file, transcriber.limits)
    if stream:
        return await stream_transcription(
            request, transcriber, data, options, diarized=response_format == "diarized_json"
        )
    result = await unless_client_leaves(request, transcriber.transcribe(data, options))
    log_result(request, result)
    limits = CueLimits(max_line_chars=max_line_chars, max_cue_s=max_cue_s, tags=subtitle_tags)
    response = render(result, response_format, granularities, options, limits)
    response.headers["X-Audio-Duration"] = f"{result.transcript.duration:g}"  # for any format
    return response


def served_names(settings: Settings) -> list[str]:
    return [settings.served_model_name, *settings.model_aliases]


def check_model(model: str, settings: Settings) -> None:
    if model not in served_names(settings):
        raise ModelNotFound(
            f"The model {quoted(model)} is not served here; use one of: "
            f"{', '.join(served_names(settings))} (GET /v1/models).",
            param="model",
        )


def describe_form(document: Document, settings: Settings) -> None:
    """The form as this server takes it (api/schemas.py): the model names it serves, and
    diarized_json only with speaker labels on."""
    fields = form_schema(document, "/v1/audio/transcriptions")["properties"]
    fields["model"]["enum"] = served_names(settings)
    if not settings.speakers:
        fields["response_format"]["enum"].remove("diarized_json")


def render(
    result: TranscriptionResult,
    response_format: ResponseFormat,
    granularities: set[str],
    options: DecodeOptions,
    limits: CueLimits,
) -> Response:
    transcript = result.transcript
    if response_format == "text":
        return PlainTextResponse(transcript.rich_text)
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript, limits), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript, limits), media_type="text/vtt")
    if response_format == "verbose_json":
        body = formats.verbose_json(
            transcript, segments="segment" in granularities, words="word" in granularities
        )
        return JSONResponse({**body, "from_cache": result.from_cache})
    if response_format == "diarized_json":
        return JSONResponse(formats.diarized_json(transcript))
    body = {"text": transcript.rich_text}
    if options.logprobs:
        body["logprobs"] = formats.logprobs(transcript)
    return JSONResponse(body)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def not_served(path: str) -> None:
    """Unknown /v1 paths get OpenAI's error shape, not the web UI's catch-all 404."""
    raise NotFound(f"/v1/{path[:100]} is not an endpoint of this server (see /docs).")
