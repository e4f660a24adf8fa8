"""SRT and WebVTT files from a transcript's segments (one cue per VAD segment).

Cue text is the segment's rich text, so emotion and event emoji survive into subtitles.
"""

from __future__ import annotations

from sensevoice_server.transcript import Transcript


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    cues = [
        f"{index}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.rich}\n"
        for index, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    cues = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.rich}\n"
        for s in transcript.segments
    ]
    return "\n".join(["WEBVTT\n", *cues])
