"""A realtime session's configuration: what `session.update` may set (in the GA shape, or
the retired beta shape many self-hosted clients still send), checked value by value, and
the session object the server shows back. A bad value is a `BadEvent`: an error event, and
the session goes on (api/realtime.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sensevoice_server.errors import BadRequest
from sensevoice_server.live.session import TurnDetection
from sensevoice_server.options import LANGUAGES, DecodeOptions, checked_keywords, checked_languages

RATES = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
LOGPROBS = "item.input_audio_transcription.logprobs"
MAX_PREFIX_PADDING_MS = 500  # the live cutter keeps half a second of audio while silent
IDLE_TIMEOUT_MS = (5_000, 30_000)  # OpenAI's bounds for server_vad's idle_timeout_ms


def server_vad(turns: TurnDetection) -> dict[str, Any]:
    """OpenAI's server_vad turn detection with the values a stream will be cut with."""
    return {
        "type": "server_vad",
        "threshold": turns.threshold,
        "prefix_padding_ms": turns.padding_ms,
        "silence_duration_ms": turns.silence_ms,
    }


def turns_of(detection: dict[str, Any]) -> TurnDetection:
    """The cutter's settings from a server_vad object (checked by `checked_detection`)."""
    return TurnDetection(float(detection["threshold"]), int(detection["silence_duration_ms"]),
                         int(detection["prefix_padding_ms"]))  # fmt: skip


def checked_detection(detection: Any, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """A session.update's turn_detection over the session's, or BadEvent saying what is
    wrong: server_vad or null; threshold 0.16-0.99 (silero ends speech 0.15 below it);
    silence_duration_ms 100-10000; prefix_padding_ms 0-500 (what the cutter keeps before
    speech)."""
    param = "session.audio.input.turn_detection"
    if detection is None:
        return None
    if not isinstance(detection, dict) or detection.get("type", "server_vad") != "server_vad":
        raise BadEvent("turn_detection must be server_vad or null.", "invalid_value", param)
    merged = {**defaults, **{k: v for k, v in detection.items() if v is not None}}
    bounds = {"threshold": (0.16, 0.99), "silence_duration_ms": (100, 10_000),
              "prefix_padding_ms": (0, MAX_PREFIX_PADDING_MS)}  # fmt: skip
    for name, (low, high) in bounds.items():
        value = merged[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise BadEvent(f"turn_detection.{name} must be a number from {low} to {high}.",
                           "invalid_value", f"{param}.{name}")  # fmt: skip
    idle = merged.get("idle_timeout_ms")
    if idle is not None and (not isinstance(idle, int) or isinstance(idle, bool)
                             or not IDLE_TIMEOUT_MS[0] <= idle <= IDLE_TIMEOUT_MS[1]):  # fmt: skip
        low, high = IDLE_TIMEOUT_MS
        raise BadEvent(f"turn_detection.idle_timeout_ms must be an integer from {low} to "
                       f"{high}, or null.", "invalid_value",
                       f"{param}.idle_timeout_ms")  # fmt: skip
    return merged


class BadEvent(Exception):
    """A client event this session cannot take: an error event, and the session goes on."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


@dataclass
class SessionConfig:
    model: str
    defaults: dict[str, Any] = field(repr=False)  # the server's server_vad
    turn_detection: dict[str, Any] | None  # server_vad, or None for manual commits
    format: str = "audio/pcm"
    language: str = "auto"
    keywords: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    logprobs: bool = False  # include: ["item.input_audio_transcription.logprobs"]

    def options(self) -> DecodeOptions:
        return DecodeOptions(language=self.language, keywords=self.keywords,
                             languages=self.languages, logprobs=self.logprobs)  # fmt: skip

    def as_session(self, session_id: str) -> dict[str, Any]:
        audio_format: dict[str, Any] = {"type": self.format}
        if self.format == "audio/pcm":
            audio_format["rate"] = RATES[self.format]
        shown = {"type": "transcription", "id": session_id,
                 "object": "realtime.transcription_session",
                 "audio": {"input": {"format": audio_format,
                                     "transcription": self.transcription(),
                                     "turn_detection": self.turn_detection}}}  # fmt: skip
        if self.logprobs:
            shown["include"] = [LOGPROBS]
        return shown

    def transcription(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"model": self.model, "language": self.language}
        if self.keywords:
            shown["keywords"] = list(self.keywords)
        if self.languages:
            shown["languages"] = list(self.languages)
        return shown

    def updated(self, session: Any, served: list[str]) -> SessionConfig:
        """This config with a `session.update`'s changes; a wrong value raises BadEvent."""
        if not isinstance(session, dict) or session.get("type") != "transcription":
            raise BadEvent("session.type must be 'transcription' on this endpoint.",
                           "invalid_value", "session.type")  # fmt: skip
        given = (session.get("audio") or {}).get("input") or {}
        new = replace(self)
        if "include" in session:
            include = session["include"] or []
            if not isinstance(include, list) or set(include) - {LOGPROBS}:
                raise BadEvent(f"include may only hold {LOGPROBS!r}.", "invalid_value",
                               "session.include")  # fmt: skip
            new.logprobs = LOGPROBS in include
        if "format" in given:
            audio_format = given["format"] or {}
            new.format = audio_format.get("type", "audio/pcm")
            if new.format not in RATES or audio_format.get("rate", 24_000) != 24_000:
                raise BadEvent("audio.input.format must be audio/pcm at 24000 Hz, audio/pcmu "
                               "or audio/pcma.", "invalid_value",
                               "session.audio.input.format")  # fmt: skip
        transcription = given.get("transcription") or {}
        if "model" in transcription:
            if transcription["model"] not in served:
                raise BadEvent(f"Model {transcription['model']!r} is not served here; use one "
                               f"of {', '.join(served)}.", "model_not_found",
                               "session.audio.input.transcription.model")  # fmt: skip
            new.model = transcription["model"]
        if transcription.get("language"):
            if transcription["language"] not in LANGUAGES:
                raise BadEvent(f"language must be one of {', '.join(LANGUAGES)}.",
                               "invalid_value",
                               "session.audio.input.transcription.language")  # fmt: skip
            new.language = transcription["language"]
        for name, check in (("keywords", checked_keywords), ("languages", checked_languages)):
            if name in transcription:
                setattr(new, name, listed_values(transcription[name], name, check))
        if "turn_detection" in given:
            new.turn_detection = checked_detection(given["turn_detection"], self.defaults)
        return new


def listed_values(
    value: Any, name: str, check: Callable[[list[str], str], tuple[str, ...]]
) -> tuple[str, ...]:
    """`keywords` or `languages` of a session.update, checked as the HTTP API checks them."""
    param = f"session.audio.input.transcription.{name}"
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadEvent(f"{name} must be a list of strings.", "invalid_value", param)
    try:
        return check(value, param)
    except BadRequest as error:
        raise BadEvent(error.message, "invalid_value", param) from None


def from_beta(session: Any) -> dict[str, Any]:
    """A beta `transcription_session.update` session in the GA shape: `input_audio_format`
    (pcm16 is 24 kHz PCM; g711_ulaw, g711_alaw), `input_audio_transcription` and a top-level
    `turn_detection` move under `audio.input`. Many self-hosted clients still send it."""
    if not isinstance(session, dict):
        raise BadEvent("session must be an object.", "invalid_value", "session")
    beta_formats = {
        "pcm16": {"type": "audio/pcm", "rate": 24_000},
        "g711_ulaw": {"type": "audio/pcmu"},
        "g711_alaw": {"type": "audio/pcma"},
    }
    given: dict[str, Any] = {}
    if "input_audio_format" in session:
        if session["input_audio_format"] not in beta_formats:
            raise BadEvent("input_audio_format must be pcm16, g711_ulaw or g711_alaw.",
                           "invalid_value", "session.input_audio_format")  # fmt: skip
        given["format"] = beta_formats[session["input_audio_format"]]
    if session.get("input_audio_transcription"):
        given["transcription"] = session["input_audio_transcription"]
    if "turn_detection" in session:
        given["turn_detection"] = session["turn_detection"]
    return {"type": "transcription", "audio": {"input": given}}


def fixed_while_streaming(config: SessionConfig) -> tuple[object, ...]:
    """What a server-VAD stream was opened with (its options cannot change under it)."""
    return (config.format, config.turn_detection, config.keywords, config.languages,
            config.logprobs)  # fmt: skip
