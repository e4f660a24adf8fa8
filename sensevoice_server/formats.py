"""Every output format in one table (`FORMATS`): its name, a file's suffix, its media type and
its renderer from the one Transcript (docs/ARCHITECTURE.md, invariant 5). The OpenAI-compatible
route, the web UI's downloads and the batch CLI (in-process and with --url, which asks the
route) all render through here, so one clip gives the same bytes in a format whichever way it
was asked for (tests/e2e/test_batch_cli.py holds them to it). Adding a format is one entry
here and its test (tests/unit/test_formats.py).

The names are OpenAI's `response_format` values, and each means one thing everywhere:

- `text`: the rich text (emotion and event emoji kept); the batch CLI also takes `txt`;
- `json`: OpenAI's `{"text": ...}`, with `logprobs` when they were asked for;
- `verbose_json`: OpenAI's verbose shape, plus language, emotion and events per segment;
- `diarized_json`: OpenAI's shape for segments with speakers (speaker labels on);
- `srt`, `vtt`: readable subtitles (subtitles.py).

Every rendering ends with one newline, so `text` is the rich text and a newline: a text file
ends with one (POSIX's definition of a line; `cat`, `wc -l` and diff count on it), srt and vtt
already did, and the batch CLI takes an empty file for one a killed run left, so even no
speech must render to something. Clients of OpenAI's route commonly strip the text they get.
JSON is indented by two spaces, as OpenAI's reference shows its answers, so a file reads well.

`native` is not a format: it is the native API's JSON (/api/transcribe), which adds the
request's own fields (model, processing time, from_cache) to the transcript's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sensevoice_server.subtitles import CueLimits, to_srt, to_vtt
from sensevoice_server.transcript import Segment, Transcript, Word

FormatName = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
"""OpenAI's AudioResponseFormat; tests/unit/test_formats.py holds it to the SDK's and FORMATS."""

# Whisper names languages in full in verbose_json.
WHISPER_LANGUAGES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese",
                  "ko": "korean", "nospeech": "nospeech"}  # fmt: skip


@dataclass(frozen=True)
class Rendering:
    """What a request may change in a rendering, besides the transcript itself."""

    limits: CueLimits = field(default_factory=CueLimits)  # srt, vtt: the cues' size
    segments: bool = True  # verbose_json: the segments (OpenAI's timestamp_granularities)
    words: bool = False  # verbose_json: every word at the top level (the transcript's words)
    logprobs: bool = False  # json: each token's log-probability


@dataclass(frozen=True)
class Format:
    """One output format, as every front end offers it."""

    name: FormatName
    suffix: str  # a file's: `json` and `verbose_json` differ, so one input may have both
    media_type: str
    body: Callable[[Transcript, Rendering], str]
    label: str | None  # the web UI's download button; None: not offered there
    word_times: bool = False  # decoded with word times unless a request asks otherwise
    needs_speakers: bool = False  # only with speaker labels on

    def render(self, transcript: Transcript, rendering: Rendering | None = None) -> str:
        """The whole answer or file in this format: ends with one newline (see above)."""
        text = self.body(transcript, rendering or Rendering())
        return text if text.endswith("\n") else text + "\n"


# --- the bodies -------------------------------------------------------------------------------
def text_body(transcript: Transcript, rendering: Rendering) -> str:
    return transcript.rich_text


def json_body(transcript: Transcript, rendering: Rendering) -> str:
    out: dict[str, Any] = {"text": transcript.rich_text}
    if rendering.logprobs:
        out["logprobs"] = logprobs(transcript)
    return dumps(out)


def verbose_json_body(transcript: Transcript, rendering: Rendering) -> str:
    return dumps(verbose_json(transcript, segments=rendering.segments, words=rendering.words))


def diarized_json_body(transcript: Transcript, rendering: Rendering) -> str:
    return dumps(diarized_json(transcript))


def srt_body(transcript: Transcript, rendering: Rendering) -> str:
    return to_srt(transcript, rendering.limits)


def vtt_body(transcript: Transcript, rendering: Rendering) -> str:
    return to_vtt(transcript, rendering.limits)


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, indent=2)


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format("text", ".txt", "text/plain; charset=utf-8", text_body, "TXT"),
        Format("srt", ".srt", "application/x-subrip; charset=utf-8", srt_body, "SRT",
               word_times=True),  # cues are cut at word times: they need them to be readable
        Format("vtt", ".vtt", "text/vtt; charset=utf-8", vtt_body, "VTT", word_times=True),
        # json is the text in quotes: the UI offers verbose_json as its JSON instead
        Format("json", ".json", "application/json", json_body, None),
        Format("verbose_json", ".verbose.json", "application/json", verbose_json_body, "JSON"),
        # verbose_json names each segment's speaker too, so the UI needs no second JSON
        Format("diarized_json", ".diarized.json", "application/json", diarized_json_body, None,
               needs_speakers=True),
    )
}  # fmt: skip
ALIASES = {"txt": "text"}  # the batch CLI's name for text (its suffix) since its first version


def canonical(name: str) -> str:
    """A format's name for an alias (`txt` -> `text`); any other name unchanged."""
    return ALIASES.get(name, name)


# --- OpenAI's shapes and the native API's -----------------------------------------------------
def native(transcript: Transcript) -> dict[str, Any]:
    """The native API's transcript fields (schemas.TranscriptionOut adds the request's)."""
    return {
        "text": transcript.rich_text,
        "plain_text": transcript.plain_text,
        "language": transcript.language,
        "duration": transcript.duration,
        "no_speech": transcript.no_speech,
        "segments": [native_segment(s) for s in transcript.segments if s.text],
    }


def native_segment(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": segment.start, "end": segment.end, "text": segment.text,
        "language": segment.language, "emotion": segment.emotion, "events": segment.events,
    }  # fmt: skip
    if segment.words:
        out["words"] = [word_dict(w) for w in segment.words]
    if segment.speaker is not None:
        out["speaker"] = speaker_name(segment.speaker)
    return out


def word_dict(word: Word) -> dict[str, Any]:
    out: dict[str, Any] = {"word": word.word, "start": word.start, "end": word.end}
    if word.probability is not None:
        out["probability"] = word.probability
    return out


def speaker_name(speaker: int) -> str:
    return f"S{speaker + 1}"


def verbose_json(
    transcript: Transcript, *, segments: bool = True, words: bool = False
) -> dict[str, Any]:
    """OpenAI's verbose_json: `segments` and/or `words` (top level, as OpenAI returns them).

    SenseVoice has no decoder, so temperature, compression_ratio and the like are fixed
    placeholders for clients that require the fields; avg_logprob is the mean of the
    segment's token log-probabilities when they were kept.
    """
    out: dict[str, Any] = {
        "task": "transcribe",
        "language": WHISPER_LANGUAGES.get(transcript.language, transcript.language),
        "duration": transcript.duration,
        "text": transcript.rich_text,
    }
    if segments:
        out["segments"] = [openai_segment(i, s) for i, s in enumerate(transcript.segments)]
    if words:
        out["words"] = [word_dict(word) for word in transcript.words]
    return out


def openai_segment(index: int, segment: Segment) -> dict[str, Any]:
    logprobs = [item.logprob for item in segment.logprobs]
    out: dict[str, Any] = {
        "id": index, "seek": 0, "start": segment.start, "end": segment.end,
        "text": segment.rich, "plain_text": segment.text, "tokens": [], "temperature": 0.0,
        "avg_logprob": round(sum(logprobs) / len(logprobs), 4) if logprobs else 0.0,
        "compression_ratio": 0.0, "no_speech_prob": 0.0 if segment.text else 1.0,
        "language": segment.language, "emotion": segment.emotion, "events": segment.events,
    }  # fmt: skip
    if segment.speaker is not None:
        out["speaker"] = speaker_name(segment.speaker)
    return out


def diarized_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's diarized_json: one entry per segment with its speaker."""
    return {
        "task": "transcribe",
        "duration": transcript.duration,
        "text": transcript.rich_text,
        "segments": [diarized_segment(i, s) for i, s in enumerate(transcript.segments)],
    }


def diarized_segment(index: int, segment: Segment) -> dict[str, Any]:
    return {
        "type": "transcript.text.segment", "id": f"seg_{index}", "start": segment.start,
        "end": segment.end, "text": segment.rich,
        "speaker": speaker_name(segment.speaker or 0),
    }  # fmt: skip


def logprobs(transcript: Transcript) -> list[dict[str, Any]]:
    """OpenAI's `logprobs` items: each token with its log-probability and its UTF-8 bytes."""
    return [
        logprob_item(item.token, item.logprob)
        for segment in transcript.segments
        for item in segment.logprobs
    ]


def logprob_item(token: str, logprob: float) -> dict[str, Any]:
    """One of OpenAI's `logprobs` items (the transcription API's and the realtime API's)."""
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}
