"""The one structure every output is rendered from: segments with their SenseVoice tags.

SenseVoice prefixes the text of each VAD segment with tags such as
`<|en|><|HAPPY|><|Speech|><|withitn|>`; here they become fields (language, emotion,
events), and the renderers below turn the segments back into rich text (emoji, via funasr's
own `rich_transcription_postprocess`), plain text and JSON.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sensevoice_server.rich_text import rich_transcription_postprocess

TAG = re.compile(r"<\|([^|<>]*)\|>")
LANGUAGE_TAGS = frozenset({"zh", "en", "yue", "ja", "ko", "nospeech"})
EMOTION_TAGS = {
    "HAPPY": "happy",
    "SAD": "sad",
    "ANGRY": "angry",
    "NEUTRAL": "neutral",
    "FEARFUL": "fearful",
    "DISGUSTED": "disgusted",
    "SURPRISED": "surprised",
    "EMO_UNKNOWN": "unknown",
}
# Audio events other than plain speech; `Speech` is the default and `Event_UNK` says
# "no event", so neither is listed as an event.
EVENT_TAGS = frozenset(
    {"BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing", "Speech_Noise"}
)
# Languages written without spaces between words; any other neighbour needs a space.
UNSPACED_LANGUAGES = frozenset({"zh", "yue", "ja"})


@dataclass(frozen=True)
class Word:
    """A word of a segment's text, timed by forced alignment (seconds from the audio's start)."""

    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One decoded token and its log-probability (the CTC posterior at its best frame)."""

    token: str
    logprob: float


@dataclass(frozen=True)
class Segment:
    """One VAD segment: times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    language: str
    emotion: str
    events: list[str]
    raw: str  # SenseVoice's tagged text for this segment, exactly as the model gave it
    words: list[Word] = field(default_factory=list)  # when word timestamps were asked for
    speaker: int | None = None  # when speaker labels are on: 0, 1, ... by first appearance
    logprobs: list[TokenLogprob] = field(default_factory=list)  # when asked for

    @property
    def rich(self) -> str:
        return rich_transcription_postprocess(self.raw) if self.raw else ""


@dataclass(frozen=True)
class Transcript:
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def raw_text(self) -> str:
        """The tagged text as funasr's generate() joins it (segments separated by a space)."""
        return " ".join(segment.raw for segment in self.segments)

    @property
    def language(self) -> str:
        """The language spoken longest, or `nospeech` when nothing was said."""
        spoken: defaultdict[str, float] = defaultdict(float)  # seconds, per language
        for segment in self.segments:
            if segment.language and segment.language != "nospeech":
                spoken[segment.language] += segment.end - segment.start
        return max(spoken, key=spoken.__getitem__) if spoken else "nospeech"

    @property
    def rich_text(self) -> str:
        return join_segments([(s.rich, s.language) for s in self.segments])

    @property
    def plain_text(self) -> str:
        return join_segments([(s.text, s.language) for s in self.segments])

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    @property
    def no_speech(self) -> bool:
        """Nothing was said: no segment has any words."""
        return not any(segment.text for segment in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {"duration": self.duration, "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = []
        for segment in data["segments"]:
            words = [Word(**word) for word in segment.get("words", [])]
            logprobs = [TokenLogprob(**item) for item in segment.get("logprobs", [])]
            fields = {k: v for k, v in segment.items() if k not in ("words", "logprobs")}
            segments.append(Segment(**fields, words=words, logprobs=logprobs))
        return cls(duration=data["duration"], segments=segments)


def parse_segment(
    raw: str,
    start: float,
    end: float,
    words: list[Word] | None = None,
    logprobs: list[TokenLogprob] | None = None,
    speaker: int | None = None,
) -> Segment:
    """Split one segment's tagged text into its tags and its words."""
    tags = TAG.findall(raw)
    language = next((t for t in tags if t in LANGUAGE_TAGS), "")
    emotion = next((EMOTION_TAGS[t] for t in tags if t in EMOTION_TAGS), "")
    events = list(dict.fromkeys(t for t in tags if t in EVENT_TAGS))
    text = " ".join(TAG.sub(" ", raw).split())
    return Segment(round(start, 3), round(end, 3), text, language, emotion, events, raw,
                   words=words or [], speaker=speaker, logprobs=logprobs or [])  # fmt: skip


def join_segments(parts: list[tuple[str, str]]) -> str:
    """Join per-segment texts, with a space unless both neighbours are unspaced scripts.

    funasr's `rich_transcription_postprocess` glues segments together with no separator
    ("...today.The weather..."), which is right for Chinese and Japanese and wrong for
    English or Korean; this is the fix the issue asks for, applied to every renderer.
    """
    joiner = Joiner()
    return "".join(joiner.add(text, language) for text, language in parts)


class Joiner:
    """The join of `join_segments`, one segment at a time: `add` returns what the segment
    adds to the text (a separator and its text), so streamed pieces add up to the whole."""

    def __init__(self) -> None:
        self._previous_language: str | None = None

    def add(self, text: str, language: str) -> str:
        if not text:
            return ""
        previous, self._previous_language = self._previous_language, language
        if previous is None:
            return text
        unspaced = language in UNSPACED_LANGUAGES and previous in UNSPACED_LANGUAGES
        return text if unspaced else " " + text
