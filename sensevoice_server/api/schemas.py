"""The JSON shapes of the HTTP API, as pydantic models so /docs describes them exactly; and
/openapi.json as this server takes requests (`serve_openapi`).

FastAPI derives each route's form from its signature, which cannot know two things: a form
field has no null (multipart has no way to send one: an optional field is one a client
leaves out), and some of what a route takes depends on the server's settings (the model
names served, whether speaker labels are on, how many files a batch may hold). The document
is corrected for both once, when first asked for, so that a request the schema allows is one
the route accepts (tests/unit/test_openapi.py holds them to it with schemathesis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from sensevoice_server import formats
from sensevoice_server.api.errors import ErrorBody, ErrorOut
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import TranscriptionResult

Document = dict[str, Any]
FormRefinement = Callable[[Document, Settings], None]
"""Corrects a route's form in the OpenAPI document for the server's settings."""


class WordOut(BaseModel):
    word: str = Field(examples=["Hello,"])
    start: float = Field(description="Seconds from the start of the audio.", examples=[0.29])
    end: float = Field(examples=[0.62])
    probability: float | None = Field(
        None, description="exp(mean token log-probability)", exclude_if=lambda v: v is None
    )


class SegmentOut(BaseModel):
    start: float = Field(description="Seconds from the start of the audio.", examples=[0.23])
    end: float = Field(examples=[2.69])
    text: str = Field(description="The words, without tags.", examples=["Hello, this is a test."])
    language: str = Field(examples=["en"])
    emotion: str = Field(description="happy, sad, angry, neutral, ...", examples=["neutral"])
    events: list[str] = Field(description="Audio events: BGM, Laughter, Applause, ...")
    # present only when asked for / turned on
    words: list[WordOut] | None = Field(
        None, description="With word_timestamps=true.", exclude_if=lambda v: v is None
    )
    speaker: str | None = Field(
        None, description="S1, S2, ... when speaker labels are on.", exclude_if=lambda v: v is None
    )


class TranscriptionOut(BaseModel):
    text: str = Field(
        description="Rich text: emotion and event emoji kept.", examples=["😀Hello!😊"]
    )
    plain_text: str = Field(examples=["Hello!"])
    language: str = Field(description="The language spoken longest.", examples=["en"])
    duration: float = Field(description="Seconds of audio.", examples=[5.06])
    no_speech: bool = Field(description="True when nothing was said (segments is empty).")
    segments: list[SegmentOut]
    model: str = Field(examples=["sensevoice-small"])
    processing_ms: float = Field(examples=[312.5])
    from_cache: bool

    @classmethod
    def of(cls, result: TranscriptionResult) -> TranscriptionOut:
        return cls(
            **formats.native(result.transcript),
            model=result.model,
            processing_ms=round(result.processing_ms, 1),
            from_cache=result.from_cache,
        )


class BatchItemOut(BaseModel):
    index: int
    filename: str | None = Field(description="As the client named it; never used as a path.")
    status: int = Field(description="The HTTP status this file alone would have got.")
    result: TranscriptionOut | None = None
    error: ErrorBody | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "Bad parameters or empty audio",
        401: "Missing or wrong API key",
        413: "Over the byte or duration limit",
        415: "Not decodable as audio",
        429: "Queue full; see Retry-After",
        503: "Model not loaded yet, or shutting down; see Retry-After",
    }.items()
}


# --- /openapi.json as served ----------------------------------------------------------------
def serve_openapi(app: FastAPI, settings: Settings, refinements: list[FormRefinement]) -> None:
    """Make `app.openapi()` (FastAPI's document, cached on the app) describe forms as they
    are sent, and each route's form as `refinements` correct it for `settings`."""
    build = app.openapi

    def document() -> Document:
        if app.openapi_schema is None:
            built = build()
            for form in multipart_forms(built):
                for name, field in form.get("properties", {}).items():
                    form["properties"][name] = without_null(field)
            for refine in refinements:
                refine(built, settings)
        return app.openapi_schema  # type: ignore[return-value]  # built above

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented override


def multipart_forms(document: Document) -> list[Document]:
    """The schema of every multipart/form-data request body, each once."""
    forms: dict[str, Document] = {}
    for path in document.get("paths", {}):
        for method in document["paths"][path]:
            content = document["paths"][path][method].get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                ref = content["multipart/form-data"]["schema"].get("$ref", "")
                forms.setdefault(ref, form_schema(document, path, method))
    return list(forms.values())


def form_schema(document: Document, path: str, method: str = "post") -> Document:
    """The schema of a route's multipart form (the component FastAPI's `$ref` names)."""
    body = document["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]
    schema: Document = body["schema"]
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Document = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def without_null(field: Document) -> Document:
    """A form field's schema without its `null` alternative (`int | None` is
    `anyOf: [integer, null]`): a client says "none" by leaving the field out."""
    options = field.get("anyOf")
    if not options:
        return field
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) == len(options):
        return field
    rest = {key: value for key, value in field.items() if key != "anyOf"}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
