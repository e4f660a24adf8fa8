"""Every output format, rendered from the one Transcript: the HTTP API, the UI's downloads and
the batch CLI all write files through here (docs/ARCHITECTURE.md, invariant 5).

- `txt`: the rich text (emotion and event emoji kept); `srt`, `vtt`: subtitles.py;
- `json`: the native API's shape (segments with language, emotion, events, words);
- `verbose_json`: OpenAI's shape, plus language, emotion and events per segment;
- `diarized_json`: OpenAI's shape for segments with speakers.
"""

from __future__ import annotations

from typing import Any, Literal

from sensevoice_server.subtitles import CueLimits, to_srt, to_vtt
from sensevoice_server.transcript import Segment, Transcript

FileFormat = Literal["txt", "srt", "vtt", "json", "verbose_json"]
SUFFIXES: dict[str, str] = {"txt": ".txt", "srt": ".srt", "vtt": ".vtt", "json": ".json",
                            "verbose_json": ".verbose.json"}  # fmt: skip
# Whisper names languages in full in verbose_json.
WHISPER_LANGUAGES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese",
                  "ko": "korean", "nospeech": "nospeech"}  # fmt: skip


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


def word_dict(word: Any) -> dict[str, Any]:
    out = {"word": word.word, "start": word.start, "end": word.end}
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
        "text": segment.rich, "tokens": [], "temperature": 0.0,
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
        {"token": item.token, "logprob": item.logprob, "bytes": list(item.token.encode())}
        for segment in transcript.segments
        for item in segment.logprobs
    ]


DEFAULT_LIMITS = CueLimits()


def render_file(transcript: Transcript, fmt: str, limits: CueLimits = DEFAULT_LIMITS) -> str:
    """A whole file's content in `fmt` (txt, srt, vtt, json, verbose_json)."""
    import json

    if fmt == "txt":
        return transcript.rich_text + "\n"
    if fmt == "srt":
        return to_srt(transcript, limits)
    if fmt == "vtt":
        return to_vtt(transcript, limits)
    if fmt == "json":
        return json.dumps(native(transcript), ensure_ascii=False, indent=2) + "\n"
    if fmt == "verbose_json":
        body = verbose_json(transcript, words=bool(transcript.words))
        return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
