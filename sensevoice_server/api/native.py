"""The native REST API: one file, or a batch of files, to structured JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from sensevoice_server.api.auth import require_api_key
from sensevoice_server.api.deps import SettingsDep, TranscriberDep
from sensevoice_server.api.errors import error_body
from sensevoice_server.api.schemas import (
    ERROR_RESPONSES,
    BatchItemOut,
    BatchOut,
    Document,
    TranscriptionOut,
    form_schema,
)
from sensevoice_server.api.uploads import (
    log_result,
    one_file_part,
    spooled_upload,
    unless_client_leaves,
)
from sensevoice_server.audio import Upload
from sensevoice_server.errors import BadRequest, NotFound, ServiceError
from sensevoice_server.options import (
    MAX_KEYWORDS,
    DecodeOptions,
    Keyword,
    Language,
    Spoken,
    checked_keywords,
    checked_languages,
)
from sensevoice_server.settings import Settings
from sensevoice_server.several_files import transcribe_many

router = APIRouter(prefix="/api", tags=["transcription"], dependencies=[Depends(require_api_key)])

LanguageForm = Annotated[Language, Form(description="Spoken language, or auto to detect it.")]
ItnForm = Annotated[bool, Form(description="Inverse text normalisation: punctuation, numbers.")]
SpeakersForm = Annotated[
    int | None,
    Form(ge=1, le=32, description="How many speakers (needs speaker labels on the server)."),
]
WordsForm = Annotated[
    bool, Form(description="Time each word (forced alignment; costs a little more).")
]
KeywordsForm = Annotated[
    list[Keyword] | None,
    Form(
        max_length=MAX_KEYWORDS,
        description=f"Words or phrases to favour (names, terms); one per field, at most "
        f"{MAX_KEYWORDS}. Decodes with a beam search (a little slower) when given.",
    ),
]
LanguagesForm = Annotated[
    list[Spoken] | None,
    Form(description="With language auto: detect only among these (zh, en, yue, ja, ko)."),
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
    settings: SettingsDep,
    file: AudioFile,
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
    word_timestamps: WordsForm = False,
    num_speakers: SpeakersForm = None,
    keywords: KeywordsForm = None,
    languages: LanguagesForm = None,
) -> TranscriptionOut:
    data = spooled_upload(file, transcriber.limits)
    options = decode_options(
        settings, language, use_itn, word_timestamps, num_speakers, keywords, languages
    )
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
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile],
        File(min_length=1, description="Audio files, one part each (at most max_batch_files)."),
    ],
    language: LanguageForm = "auto",
    use_itn: ItnForm = True,
    word_timestamps: WordsForm = False,
    num_speakers: SpeakersForm = None,
    keywords: KeywordsForm = None,
    languages: LanguagesForm = None,
) -> BatchOut:
    limit = settings.max_batch_files
    if len(files) > limit:
        raise BadRequest(f"A batch may hold at most {limit} files; this one has {len(files)}.")
    options = decode_options(
        settings, language, use_itn, word_timestamps, num_speakers, keywords, languages
    )
    results = await unless_client_leaves(request, transcribe_all(transcriber, files, options))
    return BatchOut(results=results)


def decode_options(
    settings: Settings,
    language: str,
    use_itn: bool,
    words: bool,
    speakers: int | None,
    keywords: list[Keyword] | None,
    languages: list[Spoken] | None,
) -> DecodeOptions:
    if speakers is not None and not settings.speakers:
        raise BadRequest(
            "num_speakers needs speaker labels, which this server has off; start it with "
            "--speakers (SENSEVOICE_SPEAKERS=true).",
            param="num_speakers",
        )
    return DecodeOptions(
        language, use_itn, word_timestamps=words, num_speakers=speakers,
        keywords=checked_keywords(keywords or []),
        languages=checked_languages(languages or []),
    )  # fmt: skip


def describe_forms(document: Document, settings: Settings) -> None:
    """The forms as this server takes them (api/schemas.py): num_speakers only with speaker
    labels on, and a batch of at most `max_batch_files` files."""
    forms = {path: form_schema(document, path) for path in ("/api/transcribe", "/api/batch")}
    if not settings.speakers:
        for form in forms.values():
            form["properties"].pop("num_speakers", None)
    forms["/api/batch"]["properties"]["files"]["maxItems"] = settings.max_batch_files


async def transcribe_all(
    transcriber: TranscriberDep, files: list[UploadFile], options: DecodeOptions
) -> list[BatchItemOut]:
    uploads: list[Upload | ServiceError] = []
    for file in files:
        try:
            uploads.append(spooled_upload(file, transcriber.limits))
        except ServiceError as error:
            uploads.append(error)
    outcomes = await transcribe_many(transcriber, uploads, options)
    return [
        BatchItemOut(index=index, filename=file.filename, status=outcome.status,
                     error=error_body(outcome))
        if isinstance(outcome, ServiceError)
        else BatchItemOut(index=index, filename=file.filename, status=200,
                          result=TranscriptionOut.of(outcome))
        for index, (file, outcome) in enumerate(zip(files, outcomes, strict=True))
    ]  # fmt: skip


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def not_served(path: str) -> None:
    """Unknown /api paths get the API's error shape, not the web UI's catch-all 404."""
    raise NotFound(f"/api/{path[:100]} is not an endpoint of this server (see /docs).")
