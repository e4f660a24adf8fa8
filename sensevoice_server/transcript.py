"""The one structure every output is rendered from: segments with their SenseVoice tags.

SenseVoice prefixes the text of each VAD segment with tags such as
`<|en|><|HAPPY|><|Speech|><|withitn|>`; here they become fields (language, emotion,
events), and the renderers below turn the segments back into rich text (emoji, via funasr's
own `rich_transcription_postprocess`), plain text and JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

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
class Segment:
    """One VAD segment: times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    language: str
    emotion: str
    events: list[str]
    raw: str  # SenseVoice's tagged text for this segment, exactly as the model gave it

    @property
    def rich(self) -> str:
        # Imported here: `import funasr` costs ~6 s, which the engine's worker thread pays
        # while the server already answers /health.
        from funasr.utils.postprocess_utils import rich_transcription_postprocess

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
        spoken: Counter[str] = Counter()
        for segment in self.segments:
            if segment.language and segment.language != "nospeech":
                spoken[segment.language] += segment.end - segment.start
        return spoken.most_common(1)[0][0] if spoken else "nospeech"

    @property
    def rich_text(self) -> str:
        return join_segments([(s.rich, s.language) for s in self.segments])

    @property
    def plain_text(self) -> str:
        return join_segments([(s.text, s.language) for s in self.segments])

    def to_dict(self) -> dict[str, Any]:
        return {"duration": self.duration, "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            duration=data["duration"],
            segments=[Segment(**segment) for segment in data["segments"]],
        )


def parse_segment(raw: str, start: float, end: float) -> Segment:
    """Split one segment's tagged text into its tags and its words."""
    tags = TAG.findall(raw)
    language = next((t for t in tags if t in LANGUAGE_TAGS), "")
    emotion = next((EMOTION_TAGS[t] for t in tags if t in EMOTION_TAGS), "")
    events = list(dict.fromkeys(t for t in tags if t in EVENT_TAGS))
    text = " ".join(TAG.sub(" ", raw).split())
    return Segment(round(start, 3), round(end, 3), text, language, emotion, events, raw)


def join_segments(parts: list[tuple[str, str]]) -> str:
    """Join per-segment texts, with a space unless both neighbours are unspaced scripts.

    funasr's `rich_transcription_postprocess` glues segments together with no separator
    ("...today.The weather..."), which is right for Chinese and Japanese and wrong for
    English or Korean; this is the fix the issue asks for, applied to every renderer.
    """
    out = ""
    previous_language = ""
    for text, language in parts:
        if not text:
            continue
        unspaced = language in UNSPACED_LANGUAGES and previous_language in UNSPACED_LANGUAGES
        if out and not unspaced:
            out += " "
        out += text
        previous_language = language
    return out
