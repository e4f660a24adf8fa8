"""OpenAI-compatible speech to text, so existing OpenAI scripts only change the base URL.

Follows https://platform.openai.com/docs/api-reference/audio/createTranscription and the
schemas of OpenAI's OpenAPI document (tests/support/openai_schema/): json, text, srt, vtt,
verbose_json (segments and/or words), diarized_json (when speaker labels are on),
`include[]=logprobs` and `stream=true` (server-sent events, api/events.py). Answers keep
SenseVoice's language, emotion and event tags, which OpenAI's own models do not give. Every
format is rendered by formats.py, as the web UI's downloads and the batch CLI's files are;
`use_itn` and the subtitle limits are SenseVoice's own fields.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

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
from sensevoice_server.options import (
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    DecodeOptions,
    Keyword,
    Language,
    Spoken,
    checked_keywords,
    checked_languages,
)
from sensevoice_server.settings import Settings
from sensevoice_server.subtitles import CueLimits

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])

STARTED = int(time.time())
# what /docs shows for each media type the formats answer in (formats.py lists them)
EXAMPLES: dict[str, object] = {
    "application/json": {"text": "Hello, this is a test.😊"},
    "text/plain": "Hello, this is a test.😊\n",
    "application/x-subrip": "1\n00:00:00,230 --> 00:00:02,690\nHello, this is a test.😊\n",
    "text/vtt": "WEBVTT\n\n00:00:00.230 --> 00:00:02.690\nHello, this is a test.😊\n",
}


def documented_content() -> dict[str, dict[str, object]]:
    """The 200 answer's content types: every format's, and the stream's."""
    content: dict[str, dict[str, object]] = {}
    for fmt in formats.FORMATS.values():
        media_type = fmt.media_type.split(";")[0]
        example: dict[str, object] = (
            {"example": EXAMPLES[media_type]} if media_type in EXAMPLES else {}
        )
        content.setdefault(media_type, example)
    content["text/event-stream"] = {
        "example": 'data: {"type": "transcript.text.delta", "delta": "Hello"}'
    }
    return content


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
            "srt and vtt as subtitles (formats.py); with stream=true, server-sent events.",
            "content": documented_content(),
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
    response_format: Annotated[
        formats.FormatName,
        Form(
            description="The answer's format: the same bytes as the web UI's and the batch "
            "CLI's files in that format."
        ),
    ] = "json",
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
    keywords: Annotated[
        list[Keyword] | None,
        Form(
            alias="keywords[]",
            max_length=MAX_KEYWORDS,
            description=f"Words or phrases to favour (names, terms): at most {MAX_KEYWORDS}, "
            f"each at most {MAX_KEYWORD_CHARS} characters.",
        ),
    ] = None,
    languages: Annotated[
        list[Spoken] | None,
        Form(
            alias="languages[]",
            description="The languages to expect (zh, en, yue, ja, ko): detection chooses "
            "among these only. language, when given, still forces one.",
        ),
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
    use_itn: Annotated[
        bool, Form(description="Punctuation and numbers as written (SenseVoice's own).")
    ] = True,
) -> Response:
    check_model(model, settings)
    fmt = formats.FORMATS[response_format]
    if fmt.needs_speakers and not settings.speakers:
        raise BadRequest(
            f"{fmt.name} needs speaker labels, which this server has off; start it with "
            "--speakers (SENSEVOICE_SPEAKERS=true).",
            param="response_format",
        )
    granularities = set(timestamp_granularities or ["segment"])
    # subtitles are cut at word times (readable cues need them) unless only segment times
    # were asked for; other formats align words only when asked
    words = (fmt.word_times and not timestamp_granularities) or "word" in granularities
    options = DecodeOptions(
        language=language or "auto", use_itn=use_itn, word_timestamps=words,
        logprobs="logprobs" in (include or []),
        keywords=checked_keywords(keywords or [], "keywords[]"),
        languages=checked_languages(languages or [], "languages[]"),
    )  # fmt: skip
    data = spooled_upload(file, transcriber.limits)
    if stream:
        return await stream_transcription(
            request, transcriber, data, options, diarized=fmt.needs_speakers
        )
    result = await unless_client_leaves(request, transcriber.transcribe(data, options))
    log_result(request, result)
    rendering = formats.Rendering(
        limits=CueLimits(max_line_chars=max_line_chars, max_cue_s=max_cue_s, tags=subtitle_tags),
        segments="segment" in granularities, words="word" in granularities,
        logprobs=options.logprobs,
    )  # fmt: skip
    # the body is the format's bytes alone (the same as the UI's and the CLI's files);
    # what varies with the request goes in headers, for any format
    return Response(
        fmt.render(result.transcript, rendering),
        media_type=fmt.media_type,
        headers={
            "X-Audio-Duration": f"{result.transcript.duration:g}",
            "X-From-Cache": str(result.from_cache).lower(),
        },
    )


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
    the formats that need speaker labels (diarized_json) only with them on."""
    fields = form_schema(document, "/v1/audio/transcriptions")["properties"]
    fields["model"]["enum"] = served_names(settings)
    if not settings.speakers:
        enum = fields["response_format"]["enum"]
        enum[:] = [name for name in enum if not formats.FORMATS[name].needs_speakers]


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def not_served(path: str) -> None:
    """Unknown /v1 paths get OpenAI's error shape, not the web UI's catch-all 404."""
    raise NotFound(f"/v1/{path[:100]} is not an endpoint of this server (see /docs).")
