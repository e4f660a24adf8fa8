"""The live-transcription WebSocket protocol: every message, defined once.

The WebSocket route (api/stream.py) validates what clients send with these models and sends
these models back; the CLI client (cli/stream.py) and the UI's Live tab use the same ones,
and the README's protocol section is generated from this module's docstrings.

Client to server: first a `StreamConfig`; then binary frames of mono little-endian PCM in
the configured format and rate (any size, whole samples; no faster than the server's
live_max_speed times real time, and no slower than its live_min_speed); then an `End`.
Server to client, JSON text frames: `Ready` once the config is taken; `Partial` while an
utterance goes on; `Final` when it closes; `Done` after the end, then a normal close (1000).
A problem gives an `ErrorMessage` and a close whose code says what kind (`CLOSE_CODES`).
When the server ends a stream on its own terms (idle, too fast, shutting down), the finals
of everything the client sent come first.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from sensevoice_server.errors import UnsupportedData
from sensevoice_server.live.results import Heard, Preview
from sensevoice_server.options import MAX_KEYWORDS, Keyword, Language, Spoken

SAMPLE_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
SampleFormat = Literal["pcm_s16le", "f32le"]
SAMPLE_WIDTH: dict[str, int] = {"pcm_s16le": 2, "f32le": 4}
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]

CLOSE_CODES = {
    1000: "normal: the stream ended and every final was sent",
    1001: "the server is shutting down (the finals of what was sent came first): reconnect "
    "(to another replica)",
    1003: "unsupported data: a bad audio frame, sample rate or message",
    1008: "policy: a bad config, an idle or too fast stream, a stream over the time limit",
    1011: "internal error",
    1013: "try again later: the session limit is reached or the server is too busy",
}


# --- client to server -------------------------------------------------------------------------
class StreamConfig(BaseModel):
    """The client's first message: how the audio comes and what to decode."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["config"] = "config"
    language: Language = "auto"
    use_itn: bool = True
    word_timestamps: bool = Field(False, description="Finals carry timed words.")
    logprobs: bool = Field(False, description="Finals carry each token's log-probability.")
    keywords: list[Keyword] = Field(
        default_factory=list, max_length=MAX_KEYWORDS,
        description="Words or phrases to favour (names, terms): decoded with a beam search.",
    )  # fmt: skip
    languages: list[Spoken] = Field(
        default_factory=list, description="With language auto: detect only among these."
    )
    sample_rate: int = Field(gt=0, description=f"One of {', '.join(map(str, SAMPLE_RATES))}.")
    format: SampleFormat
    session_id: SessionId | None = Field(
        None, description="Reconnect with it (also as ?session_id= in the URL, which nginx "
        "routes on) to continue the segment numbering.",
    )  # fmt: skip


class End(BaseModel):
    """The only text message allowed after the config: no more audio is coming."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["end"]


# --- server to client -------------------------------------------------------------------------
class Ready(BaseModel):
    """The config is taken; results will number utterances from `next_segment`."""

    type: Literal["ready"] = "ready"
    session_id: str
    next_segment: int


class Partial(BaseModel):
    """The open utterance decoded so far; a later partial or its final replaces it."""

    type: Literal["partial"] = "partial"
    segment: int
    start: float
    text: str


class TimedWord(BaseModel):
    word: str
    start: float
    end: float
    probability: float | None = None


class TokenScore(BaseModel):
    token: str
    logprob: float = Field(description="The CTC posterior's log at the token's best frame.")


class Final(BaseModel):
    """A closed utterance, decoded once more as a whole: its text will not change.
    Times are seconds of this stream's audio."""

    type: Literal["final"] = "final"
    segment: int
    start: float
    end: float
    text: str
    rich: str = Field(description="The text with SenseVoice's emotion and event emoji.")
    language: str
    emotion: str
    events: list[str]
    words: list[TimedWord] | None = Field(
        None, description="When the config asked for word_timestamps.",
        exclude_if=lambda words: words is None,
    )  # fmt: skip
    logprobs: list[TokenScore] | None = Field(
        None, description="When the config asked for logprobs: each token's.",
        exclude_if=lambda logprobs: logprobs is None,
    )  # fmt: skip
    speaker: int | None = Field(
        None, description="When the server labels speakers: 0, 1, ... by first appearance "
        "in this session.", exclude_if=lambda speaker: speaker is None,
    )  # fmt: skip


class Done(BaseModel):
    """Every final has been sent; the server closes with 1000."""

    type: Literal["done"] = "done"


class ErrorMessage(BaseModel):
    """Why the stream ends; the close code that follows says what kind of problem it was."""

    type: Literal["error"] = "error"
    code: str
    reason: str


CONFIG = TypeAdapter(StreamConfig)
CONTROL = TypeAdapter(End)
SESSION_ID = TypeAdapter(SessionId)
SERVER_MESSAGES: tuple[type[BaseModel], ...] = (Ready, Partial, Final, Done, ErrorMessage)


def partial_message(preview: Preview) -> Partial:
    return Partial(segment=preview.segment, start=preview.start, text=preview.text)


def final_message(heard: Heard, config: StreamConfig) -> Final:
    """What was heard, with the words and token scores the config asked for."""
    said = heard.said
    words = [TimedWord(word=w.word, start=w.start, end=w.end, probability=w.probability)
             for w in (said.words if said else [])]  # fmt: skip
    scores = [TokenScore(token=t.token, logprob=t.logprob) for t in (said.logprobs if said else [])]
    return Final(
        segment=heard.segment, start=heard.start, end=heard.end, text=heard.text,
        rich=heard.rich, language=heard.language, emotion=heard.emotion, events=heard.events,
        words=words if config.word_timestamps else None,
        logprobs=scores if config.logprobs else None, speaker=said.speaker if said else None,
    )  # fmt: skip


def pcm_samples(data: bytes, fmt: str) -> np.ndarray:
    """One binary frame to float32 samples; a frame must hold whole samples."""
    width = SAMPLE_WIDTH[fmt]
    if len(data) % width:
        raise UnsupportedData(
            f"A binary frame must hold whole {fmt} samples ({width} bytes each); "
            f"got {len(data)} bytes.",
            "invalid_audio",
        )
    if fmt == "pcm_s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise UnsupportedData("The f32le audio holds NaN or infinite values.", "invalid_audio")
    return samples


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as the pcm_s16le frames clients send."""
    frames: bytes = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return frames


def markdown() -> str:
    """The protocol as the README documents it, from the models above."""
    lines = ["| message | direction | fields |", "|---|---|---|"]
    models: list[type[BaseModel]] = [StreamConfig, End, *SERVER_MESSAGES]
    for model in models:
        direction = "client → server" if model in (StreamConfig, End) else "server → client"
        fields = ", ".join(f"`{name}`" for name in model.model_fields)
        doc = " ".join((model.__doc__ or "").split())
        lines.append(f"| `{model.__name__}`: {doc} | {direction} | {fields} |")
    lines += ["", "| close code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in CLOSE_CODES.items()]
    return "\n".join(lines)
