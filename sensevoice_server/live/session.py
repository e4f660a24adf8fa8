"""One live stream: audio in, a `Preview` of the open utterance and what was `Heard` in each
closed one out (results.py), decoded by the one model.

SenseVoiceSmall is not a streaming model, so a `LiveSession` makes it feel like one: the
`UtteranceCutter` finds where speech starts and ends; while an utterance is open it is
re-decoded now and then for a partial result, and when it closes it is decoded once more for
its final result with language, emotion and events. Every decode goes through
`Transcriber.transcribe_utterance`, ahead of uploads in the engine's queue (finals ahead of
partials). Both front ends drive this class, the WebSocket route (api/stream.py) and the UI's
Live tab (ui/live.py), through a `LiveStream` (stream.py) that `LiveSessions.open` gives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from sensevoice_server.errors import (
    Busy,
    GoingAway,
    NotReady,
    ServiceError,
    StreamError,
    TryAgainLater,
)
from sensevoice_server.live.cutter import Closed, Utterance, UtteranceCutter
from sensevoice_server.live.results import Event, Heard, Preview
from sensevoice_server.live.speakers import SpeakerTrack
from sensevoice_server.live.vad import SPEECH_PAD_MS
from sensevoice_server.options import DecodeOptions
from sensevoice_server.pcm import SAMPLE_RATE
from sensevoice_server.transcript import Segment, Transcript

log = logging.getLogger(__name__)

MIN_PARTIAL = SAMPLE_RATE // 2  # no partial for less audio than this
PARTIALS_IN_FLIGHT = 1  # per process: partials use what finals leave of the model
PARTIAL_SHARE = 0.5  # partials of all streams together take at most this share of the model
MAX_PENDING = 30 * SAMPLE_RATE  # closed audio awaiting finals before feed() waits (backpressure)
BACKPRESSURE_LIMIT_S = 15.0  # longest feed() waits for that; below the WebSocket ping timeout
BUSY_RETRY_S = 0.25  # a full engine queue: retry a final this often...
BUSY_LIMIT_S = 30.0  # ...for this long, then give up on the stream


class FinalDecoder(Protocol):
    """What a session needs of the Transcriber: one utterance to a transcript, and with
    speaker labels on, its speaker embedding."""

    @property
    def labels_speakers(self) -> bool: ...

    async def transcribe_utterance(
        self, samples: np.ndarray, options: DecodeOptions, *, partial: bool = False
    ) -> Transcript: ...

    async def speaker_embedding(self, samples: np.ndarray) -> np.ndarray | None: ...


@dataclass
class StreamLoad:
    """Stream work of one process not yet done, shared by all its streams (event-loop only).

    Lets a partial, which is only a preview, wait until no final anywhere in the process is
    waiting, and spaces partials out as more streams share the model.
    """

    finals: int = 0  # utterances closed and not yet given their final
    partials: int = 0  # partial decodes queued or running
    sessions: int = 0  # streams open now
    partial_s: float = field(default=0.0)  # recent model time of one partial (moving average)

    def partial_interval(self, least_s: float) -> float:
        """Seconds between two partials of one stream: at least `least_s`, and long enough
        that partials of all streams fill at most PARTIAL_SHARE of the model's time."""
        return max(least_s, self.partial_s * max(self.sessions, 1) / PARTIAL_SHARE)

    def observe_partial(self, seconds: float) -> None:
        self.partial_s = seconds if not self.partial_s else 0.7 * self.partial_s + 0.3 * seconds


@dataclass(frozen=True)
class LiveSettings:
    vad_threshold: float
    end_silence_ms: int
    max_utterance_s: float
    partial_interval_s: float
    speech_pad_ms: int = SPEECH_PAD_MS  # audio kept before a start (and after an end)


@dataclass(frozen=True)
class TurnDetection:
    """How one stream's utterances are cut, where its protocol lets a client say (OpenAI's
    server_vad `threshold`, `silence_duration_ms`, `prefix_padding_ms`)."""

    threshold: float
    silence_ms: int
    padding_ms: int

    def applied(self, settings: LiveSettings) -> LiveSettings:
        return replace(settings, vad_threshold=self.threshold, end_silence_ms=self.silence_ms,
                       speech_pad_ms=self.padding_ms)  # fmt: skip


class LiveSession:
    """Call `feed()` with each chunk in order, `finish()` at the end of the audio, and always
    `aclose()`. Results appear on `events` as they are ready, a `StreamError` there if the
    stream must end, and None after the last result once `finish()` has run."""

    def __init__(
        self,
        decoder: FinalDecoder,
        options: DecodeOptions,
        settings: LiveSettings,
        load: StreamLoad,
        *,
        sample_rate: int = SAMPLE_RATE,
        first_segment: int = 0,
    ) -> None:
        self._decoder = decoder
        self._options = options
        self._settings = settings
        self._load = load
        self._cutter = UtteranceCutter(
            sample_rate=sample_rate, first_segment=first_segment,
            vad_threshold=settings.vad_threshold, end_silence_ms=settings.end_silence_ms,
            max_utterance_s=settings.max_utterance_s, speech_pad_ms=settings.speech_pad_ms,
        )  # fmt: skip
        self._closed: asyncio.Queue[Closed | None] = asyncio.Queue()
        self._pending = 0  # samples closed and still waiting for their final
        self._unfinished = 0  # utterances closed and still waiting for their final
        self._progress = asyncio.Condition()
        self._lock = asyncio.Lock()  # feed() and finish() in order, one at a time
        self._final_task = asyncio.create_task(self._decode_finals())
        self._partial_task: asyncio.Task[None] | None = None
        self._last_partial = (0.0, 0)  # (loop time, sample index) of the last partial asked for
        self._finished = False
        self._ended = False  # None has been put on `events`
        self._finals_stopped = False
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._heard: list[Segment] = []  # every final's segment, in stream time
        self._speakers = SpeakerTrack() if decoder.labels_speakers else None

    @property
    def next_segment(self) -> int:
        return self._cutter.next_segment

    @property
    def options(self) -> DecodeOptions:
        """What each utterance is decoded with (fixed for the stream)."""
        return self._options

    @property
    def audio_s(self) -> float:
        """Seconds of audio taken so far."""
        return seconds(self._cutter.end)

    def quiet_since(self) -> float | None:
        """Where (seconds) the stream has been quiet since: the end of its last utterance,
        or 0. None while an utterance is open or still awaits its final."""
        if self._cutter.open is not None or self._unfinished:
            return None
        return seconds(self._cutter.quiet_since)

    def transcript(self) -> Transcript:
        """Everything finalised so far, as one transcript in the stream's time (downloads)."""
        return Transcript(duration=seconds(self._cutter.end), segments=list(self._heard))

    async def feed(self, samples: np.ndarray) -> None:
        """Take the next chunk; waits (backpressure) while too much audio awaits its final."""
        async with self._lock:
            if self._finished:
                raise RuntimeError("feed() after finish() or aclose()")
            opened = self._cutter.open
            chunk = np.array(samples, dtype=np.float32).reshape(-1)  # a copy we own
            self._queue_finals(await self._cutter.take(chunk))
            if self._cutter.open is not None and self._cutter.open is not opened:
                self._last_partial = (asyncio.get_running_loop().time(), self._cutter.open.start)
            self._maybe_partial()
        await self._wait_for_capacity()

    async def commit(self) -> bool:
        """Close the open utterance now (its final follows as any other's); False when no
        utterance is open (nothing heard since the last one closed)."""
        async with self._lock:
            if self._finished:
                raise RuntimeError("commit() after finish() or aclose()")
            closed = self._cutter.commit()
            self._queue_finals(closed)
            if self._cutter.open is not None:
                self._last_partial = (asyncio.get_running_loop().time(), self._cutter.open.start)
        return bool(closed)

    async def finish(self) -> None:
        """End of audio: close the open utterance, wait for every final, then put None.

        Safe to call again and from two tasks at once (a drain and the protocol's own end):
        each call returns once every final is out, and None is put once.
        """
        async with self._lock:
            if not self._finished:
                self._finished = True
                self._queue_finals(await self._cutter.finish())
                if self._partial_task:
                    self._partial_task.cancel()
                self._closed.put_nowait(None)
        # wait() and not `await task`: a caller cancelled here must not cancel the finals
        await asyncio.wait([self._final_task])
        if not self._ended:
            self._ended = True
            self.events.put_nowait(None)

    async def aclose(self) -> None:
        """Stop now: cancel pending decodes and drop the audio. Safe to call twice."""
        self._finished = True
        tasks = [t for t in (self._partial_task, self._final_task) if t and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._load.finals -= self._unfinished
        self._unfinished = 0
        self._cutter.release()

    # --- finals ---------------------------------------------------------------------------
    def _queue_finals(self, closed: list[Closed]) -> None:
        for utterance in closed:
            self._pending += utterance.audio.size
            self._unfinished += 1
            self._load.finals += 1
            self._closed.put_nowait(utterance)

    async def _decode_finals(self) -> None:
        """Decode closed utterances one after the other, so finals come out in order."""
        try:
            while (closed := await self._closed.get()) is not None:
                transcript, speaker = await self._final_and_speaker(closed)
                heard = heard_in(closed, transcript, speaker)
                self.events.put_nowait(heard)
                if heard.said is not None:
                    self._heard.append(heard.said)
                self._unfinished -= 1
                self._load.finals -= 1
                async with self._progress:
                    self._pending -= closed.audio.size
                    self._progress.notify_all()
        except StreamError as error:
            self.events.put_nowait(error)
        except Exception:
            log.exception("final decode failed")
            self.events.put_nowait(StreamError("The server failed to decode this stream."))
        finally:
            self._finals_stopped = True
            async with self._progress:
                self._progress.notify_all()

    async def _final_and_speaker(self, closed: Closed) -> tuple[Transcript, int | None]:
        """The final decode, and beside it (the VAD thread holds CAM++, the model thread the
        model) the utterance's speaker embedding when speaker labels are on."""
        final = final_decode(self._decoder, closed.audio, self._options)
        if self._speakers is None:
            return await final, None
        transcript, embedding = await asyncio.gather(final, self._embedding(closed.audio))
        if not transcript.segments:
            return transcript, None  # nothing heard: no speaker to track
        return transcript, self._speakers.label(embedding, closed.audio.size / SAMPLE_RATE)

    async def _embedding(self, audio: np.ndarray) -> np.ndarray | None:
        """None when it cannot be had (a drain, a failure): the speaker is then the previous
        utterance's, and the final is not lost for it."""
        try:
            return await self._decoder.speaker_embedding(audio)
        except ServiceError:
            return None
        except Exception:
            log.exception("speaker embedding failed")
            return None

    async def _wait_for_capacity(self) -> None:
        if self._pending <= MAX_PENDING:
            return
        try:
            async with asyncio.timeout(BACKPRESSURE_LIMIT_S), self._progress:
                await self._progress.wait_for(
                    lambda: self._pending <= MAX_PENDING or self._finals_stopped
                )
        except TimeoutError:
            raise TryAgainLater(
                "The server cannot keep up with this stream; send audio at real time.",
                code="busy",
            ) from None

    # --- partials -------------------------------------------------------------------------
    def _maybe_partial(self) -> None:
        """Ask for a partial when one is due, unless it would delay more important work.

        Skipped (not queued for later) while a partial is still pending or a final is
        waiting, in this stream or any other of the process: finals come first.
        """
        utterance = self._cutter.open
        if utterance is None or self._finished:
            return
        if self._load.finals or self._load.partials >= PARTIALS_IN_FLIGHT:
            return
        now, end = asyncio.get_running_loop().time(), self._cutter.end
        interval = self._load.partial_interval(self._settings.partial_interval_s)
        last_time, last_end = self._last_partial
        if (
            end - utterance.start < MIN_PARTIAL
            or now - last_time < interval
            or end - last_end < interval * SAMPLE_RATE
        ):
            return
        self._last_partial = (now, end)
        self._load.partials += 1
        task = asyncio.create_task(self._decode_partial(utterance, self._cutter.open_audio()))
        task.add_done_callback(self._partial_done)
        self._partial_task = task

    def _partial_done(self, task: asyncio.Task[None]) -> None:
        # a callback, not a `finally`: a task cancelled before it starts runs no finally
        self._load.partials -= 1

    async def _decode_partial(self, utterance: Utterance, audio: np.ndarray) -> None:
        started = time.perf_counter()
        try:
            transcript = await self._decoder.transcribe_utterance(
                audio, self._options, partial=True
            )
        except ServiceError:
            return  # busy or stopping: a partial is only a preview, so skip it
        except Exception:
            log.exception("partial decode failed")
            return
        self._load.observe_partial(time.perf_counter() - started)
        if self._cutter.open is utterance:  # else its final is on the way and replaces it
            segment = transcript.segments[0] if transcript.segments else None
            text = segment.text if segment else ""
            self.events.put_nowait(
                Preview(segment=utterance.segment, start=seconds(utterance.start), text=text)
            )


async def final_decode(
    decoder: FinalDecoder, audio: np.ndarray, options: DecodeOptions
) -> Transcript:
    """An utterance's final, retried while the engine is busy (a final is never dropped, up
    to BUSY_LIMIT_S); the engine's refusals as the stream errors that end a session."""
    deadline = time.monotonic() + BUSY_LIMIT_S
    while True:
        try:
            return await decoder.transcribe_utterance(audio, options)
        except Busy as error:
            if time.monotonic() > deadline:
                raise TryAgainLater(
                    "The server stayed too busy to transcribe this stream.", code="busy"
                ) from error
            await asyncio.sleep(BUSY_RETRY_S)
        except NotReady as error:
            raise GoingAway("The server is shutting down; reconnect.") from error
        except ServiceError as error:
            raise StreamError(error.message, code=error.code) from error


def heard_in(closed: Closed, transcript: Transcript, speaker: int | None = None) -> Heard:
    """A closed utterance's final decode, in the stream's time, with its speaker."""
    segment = transcript.segments[0] if transcript.segments else None
    start = seconds(closed.start)
    said = replace(shifted(segment, start), speaker=speaker) if segment else None
    return Heard(segment=closed.segment, start=start, end=seconds(closed.end), said=said)


def shifted(segment: Segment, offset: float) -> Segment:
    """A segment of an utterance, in the time of the whole stream."""
    words = [replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3))
             for w in segment.words]  # fmt: skip
    return replace(segment, start=round(segment.start + offset, 3),
                   end=round(segment.end + offset, 3), words=words)  # fmt: skip


def seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def ready_events(session: LiveSession) -> list[Event | None]:
    """Every event the session has ready now, without waiting."""
    events: list[Event | None] = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    return events
