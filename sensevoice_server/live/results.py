"""What a live session reports as the audio goes on, in its own terms: its results.

A session knows utterances, not wire formats: it reports a `Preview` while an utterance is
open and what was `Heard` once it closes. Each protocol maps these to its own messages:
`/ws/transcribe`'s `Partial` and `Final` (protocol.py), OpenAI's realtime events
(api/realtime.py), the Live tab's caption lines (ui/live.py). Times are seconds of the
stream's audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensevoice_server.errors import StreamError
from sensevoice_server.transcript import Segment


@dataclass(frozen=True)
class Preview:
    """The open utterance decoded so far; a later preview or its `Heard` replaces it."""

    segment: int  # the utterance's number in the session (reconnects continue it)
    start: float
    text: str


@dataclass(frozen=True)
class Heard:
    """A closed utterance decoded once more as a whole: final. `said` is its segment in the
    stream's time (words and all), None when the model heard nothing in it."""

    segment: int
    start: float
    end: float
    said: Segment | None

    @property
    def text(self) -> str:
        return self.said.text if self.said else ""

    @property
    def rich(self) -> str:
        return self.said.rich if self.said else ""

    @property
    def language(self) -> str:
        return self.said.language if self.said else ""

    @property
    def emotion(self) -> str:
        return self.said.emotion if self.said else ""

    @property
    def events(self) -> list[str]:
        return list(self.said.events) if self.said else []


Event = Preview | Heard | StreamError
