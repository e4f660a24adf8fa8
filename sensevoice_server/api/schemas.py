"""The JSON shapes of the HTTP API, as pydantic models so /docs describes them exactly."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sensevoice_server import formats
from sensevoice_server.api.errors import ErrorBody, ErrorOut
from sensevoice_server.service import TranscriptionResult


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
