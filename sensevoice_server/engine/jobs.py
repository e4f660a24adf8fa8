"""What the engine works on: jobs (an upload or an utterance), their segments, their results.

A job is submitted whole and answered whole, through its future; in between it is cut into
`WorkItem`s, one per segment, which the batcher hands to the model in any mix with other
jobs' items. The job collects its segments' results in time order and resolves its future
when the last one is in. A cancelled future (the client went away) stops the rest.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from sensevoice_server.engine.alignment import AlignedWord
from sensevoice_server.engine.tokens import Token
from sensevoice_server.options import DecodeOptions
from sensevoice_server.pcm import SAMPLE_RATE


class Priority(enum.IntEnum):
    """Lower goes first: live finals, then live partials (only previews), then uploads."""

    FINAL = 0
    PARTIAL = 1
    UPLOAD = 2


@dataclass(frozen=True)
class DecodedSegment:
    start_ms: int
    end_ms: int
    text: str  # SenseVoice's tagged text for this segment
    tokens: tuple[Token, ...] = ()
    words: tuple[AlignedWord, ...] = ()  # times from the start of the audio; when asked for
    speaker: int | None = None  # when speaker labels are on


@dataclass(frozen=True)
class EngineResult:
    segments: list[DecodedSegment]
    inference_s: float  # the model's time spent on this job's segments
    queue_wait_s: float  # from submission to the first segment reaching the model

    @property
    def text(self) -> str:
        """All segments' texts joined by a space, as funasr's generate() joins them."""
        return " ".join(segment.text for segment in self.segments)


SegmentProgress = Callable[[int, int], None]
"""Called from the engine's thread with (segments decoded, segments in total)."""
SegmentSink = Callable[[DecodedSegment], None]
"""Called from the engine's thread with each segment, in time order, as it is decoded."""


@dataclass(eq=False)
class Job:
    audio: np.ndarray
    options: DecodeOptions
    priority: Priority
    use_vad: bool
    progress: SegmentProgress | None = None
    on_segment: SegmentSink | None = None
    future: Future[EngineResult] = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)
    _results: list[DecodedSegment | None] = field(default_factory=list)
    _model_s: float = 0.0
    _first_decode: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()

    def items(
        self,
        segments: list[tuple[float, float]],
        cut: Callable[..., np.ndarray],
        speakers: list[int] | None = None,
    ) -> list[WorkItem]:
        """One work item per segment (times in ms), in time order."""
        self._results = [None] * len(segments)
        return [
            WorkItem(
                self,
                index,
                cut(self.audio, segment),
                int(segment[0]),
                int(segment[1]),
                speakers[index] if speakers else None,
            )
            for index, segment in enumerate(segments)
        ]

    def whole(self) -> list[WorkItem]:
        """The whole audio as one item (an utterance a live stream's VAD already cut)."""
        self._results = [None]
        return [WorkItem(self, 0, self.audio, 0, int(self.audio.size * 1000 / SAMPLE_RATE))]

    def record(self, index: int, segment: DecodedSegment, model_s: float, started: float) -> None:
        """A segment's result; the job is answered once it has them all."""
        with self._lock:
            self._results[index] = segment
            self._model_s += model_s
            if self._first_decode is None:
                self._first_decode = started
            done = sum(result is not None for result in self._results)
        if self.progress:
            self.progress(done, len(self._results))
        if self.on_segment:
            self.on_segment(segment)
        if done == len(self._results):
            self.finish()

    def finish(self) -> None:
        segments = [result for result in self._results if result is not None]
        waited = (self._first_decode or time.perf_counter()) - self.submitted
        result = EngineResult(segments, self._model_s, waited)
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class EmbedJob:
    """A live utterance's speaker embedding, for the VAD thread (which holds CAM++); None
    when nothing in it can be embedded (too short, or digital silence)."""

    audio: np.ndarray
    future: Future[np.ndarray | None] = field(default_factory=Future)

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()


@dataclass(eq=False)
class WorkItem:
    """One segment of one job, ready for the model."""

    job: Job
    index: int
    samples: np.ndarray
    start_ms: int
    end_ms: int
    speaker: int | None = None

    @property
    def seconds(self) -> float:
        return self.samples.size / SAMPLE_RATE
