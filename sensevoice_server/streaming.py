"""Live sessions: an online VAD cuts a stream into utterances, each decoded for captions.

SenseVoiceSmall is not a streaming model, so a `LiveSession` makes it feel like one: silero
VAD (with this stream's own recurrent state) finds where speech starts and ends; while an
utterance is open it is re-decoded now and then for a partial result, and when it closes it
is decoded once more for its final result with language, emotion and events. Every decode
goes through `Transcriber.transcribe_utterance`, so it waits for the one Engine worker like
uploads do, but ahead of them.

Both front ends drive this one class, the WebSocket route (routes/stream.py) and the UI's
Live tab (ui_live.py); they only translate their own input and output.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal
from weakref import WeakKeyDictionary

import av
import numpy as np
from anyio import to_thread
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel

from sensevoice_server.engine import DecodeOptions
from sensevoice_server.errors import Busy, NotReady, ServiceError
from sensevoice_server.service import Transcriber, TranscriptionResult
from sensevoice_server.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
VAD_WINDOW = 512  # samples: silero's window at 16 kHz (32 ms)
SPEECH_PAD_MS = 30  # silero's default padding either side of detected speech
PREROLL = (
    SAMPLE_RATE // 2
)  # audio kept while silent: silero reports a start up to pad + window late
MIN_UTTERANCE = SAMPLE_RATE // 10  # shorter utterances are dropped
MIN_PARTIAL = SAMPLE_RATE // 2  # no partial for less audio than this
PARTIALS_IN_FLIGHT = 1  # per process: partials use what finals leave of the model
MAX_PENDING = 30 * SAMPLE_RATE  # closed audio awaiting finals before feed() waits (backpressure)
BACKPRESSURE_LIMIT_S = 15.0  # longest feed() waits for that; below the WebSocket ping timeout
BUSY_RETRY_S = 0.25  # a full engine queue: retry a final this often...
BUSY_LIMIT_S = 30.0  # ...for this long, then give up on the stream
RESUME_MAX = 1024  # ended session ids remembered for reconnects


# --- why a stream ends early ----------------------------------------------------------------
class StreamError(Exception):
    """A reason to end a live stream; `close_code` is its WebSocket close code (RFC 6455 7.4.1)."""

    close_code = 1011
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class GoingAway(StreamError):
    close_code = 1001
    code = "shutting_down"


class UnsupportedData(StreamError):
    close_code = 1003
    code = "unsupported_data"


class PolicyViolation(StreamError):
    close_code = 1008
    code = "policy_violation"


class TryAgainLater(StreamError):
    close_code = 1013
    code = "try_again_later"


# --- what a session produces ----------------------------------------------------------------
class Partial(BaseModel):
    """The open utterance decoded so far; a later partial or its final replaces it."""

    type: Literal["partial"] = "partial"
    segment: int
    start: float
    text: str


class Final(BaseModel):
    """A closed utterance, decoded once more as a whole: its text will not change."""

    type: Literal["final"] = "final"
    segment: int
    start: float
    end: float
    text: str
    rich: str  # the text with SenseVoice's emotion and event emoji (rich_transcription_postprocess)
    language: str
    emotion: str
    events: list[str]


Event = Partial | Final | StreamError


# --- how many sessions, and where ended ones stopped -----------------------------------------
@dataclass
class StreamLoad:
    """Stream work of one process not yet done (event-loop counters, shared by all streams).

    The engine runs stream jobs first come, first served; these let a partial, which is only
    a preview, wait until no final anywhere in the process is waiting for the model.
    """

    finals: int = 0  # utterances closed and not yet given their final
    partials: int = 0  # partial decodes queued or running


class LiveSessions:
    """The live streams of one process: a bounded number, and where recently ended ones stopped.

    A stream is pinned to one process (nginx keeps a WebSocket on one upstream), so a client
    that reconnects with the same session_id to the same process continues its segment
    numbering from here. Ended ids are kept for `live_resume_ttl_s`, the latest RESUME_MAX.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self._max = settings.live_max_sessions
        self._ttl = settings.live_resume_ttl_s
        self._lock = threading.Lock()  # the UI's state cleanup may release from another thread
        self._slots = 0
        self._active: set[str] = set()
        self._ended: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.load = StreamLoad()
        if registry is not None:
            gauge = Gauge(
                "sensevoice_live_sessions", "Live streams open now (WebSocket and UI).",
                registry=registry,
            )  # fmt: skip
            gauge.set_function(lambda: self.count)

    @property
    def count(self) -> int:
        return self._slots

    def reserve(self) -> Slot:
        """Take one of the process's live-session places, or refuse with 'try again later'."""
        with self._lock:
            if self._max == 0:
                raise PolicyViolation("Live streaming is turned off on this server.", "disabled")
            if self._slots >= self._max:
                raise TryAgainLater(
                    f"This server already runs its maximum of {self._max} live streams; "
                    "try again later or connect to another server.",
                    code="too_many_sessions",
                )
            self._slots += 1
        return Slot(self)

    def _claim(self, session_id: str | None) -> tuple[str, int]:
        with self._lock:
            self._forget_expired()
            if session_id is None:
                session_id = secrets.token_hex(8)
            elif session_id in self._active:
                raise PolicyViolation(
                    f"Session {session_id!r} is already streaming on another connection.",
                    code="session_id_in_use",
                )
            ended = self._ended.pop(session_id, None)
            self._active.add(session_id)
            return session_id, ended[0] if ended else 0

    def _release(self, session_id: str | None, next_segment: int) -> None:
        with self._lock:
            self._slots -= 1
            if session_id is None:
                return
            self._active.discard(session_id)
            self._ended[session_id] = (next_segment, time.monotonic())
            while len(self._ended) > RESUME_MAX:
                self._ended.popitem(last=False)

    def _forget_expired(self) -> None:
        horizon = time.monotonic() - self._ttl
        while self._ended and next(iter(self._ended.values()))[1] < horizon:
            self._ended.popitem(last=False)


class Slot:
    """One reserved live-session place; `release()` it exactly once, however the stream ends."""

    def __init__(self, sessions: LiveSessions) -> None:
        self._sessions = sessions
        self.session_id: str | None = None
        self.first_segment = 0
        self._released = False

    def claim(self, session_id: str | None) -> int:
        """Bind the slot to `session_id` (a new id if None); return the first segment number."""
        self.session_id, self.first_segment = self._sessions._claim(session_id)
        return self.first_segment

    def release(self, next_segment: int | None = None) -> None:
        if not self._released:
            self._released = True
            segment = self.first_segment if next_segment is None else next_segment
            self._sessions._release(self.session_id, segment)


_registries: WeakKeyDictionary[Transcriber, LiveSessions] = WeakKeyDictionary()
_registries_lock = threading.Lock()


def live_sessions(transcriber: Transcriber) -> LiveSessions:
    """The live-session registry of the process that `transcriber` serves (made on first use).

    Kept beside the transcriber rather than in it, so both front ends share one count.
    """
    with _registries_lock:
        if transcriber not in _registries:
            _registries[transcriber] = LiveSessions(
                transcriber.settings, transcriber.metrics.registry
            )
        return _registries[transcriber]


# --- audio in -------------------------------------------------------------------------------
@functools.cache
def _silero_model() -> Any:
    from silero_vad import load_silero_vad

    return load_silero_vad()  # the TorchScript model shipped in the wheel: no download


_silero_lock = threading.Lock()


class OnlineVad:
    """silero VAD over one stream, 512-sample window by window. Blocking: run it in a thread.

    The TorchScript model keeps its recurrent state inside itself, so every stream gets its
    own copy (about 2 MB, 10 ms to make); silero's VADIterator adds the start/end hysteresis.
    Costs about 25 ms of one core per second of audio.
    """

    def __init__(self, threshold: float, end_silence_ms: int) -> None:
        from silero_vad import VADIterator

        with _silero_lock:
            model = copy.deepcopy(_silero_model())
        self._iterator = VADIterator(
            model,
            threshold=threshold,
            sampling_rate=SAMPLE_RATE,
            min_silence_duration_ms=end_silence_ms,
            speech_pad_ms=SPEECH_PAD_MS,
        )
        self._rest = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> list[tuple[str, int]]:
        """Run the windows `samples` completes; return ("start" | "end", sample index) events."""
        import torch

        # torch's thread count is per thread, and on two threads silero's tiny windows cost
        # about ten times the CPU of one (measured): keep this thread at one.
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        data = np.concatenate((self._rest, samples)) if self._rest.size else samples
        usable = data.size - data.size % VAD_WINDOW
        events: list[tuple[str, int]] = []
        for offset in range(0, usable, VAD_WINDOW):
            found = self._iterator(torch.from_numpy(data[offset : offset + VAD_WINDOW]))
            if found:
                events.extend(found.items())
        self._rest = data[usable:].copy()
        return events


class Resampler:
    """Streaming conversion to 16 kHz with FFmpeg's resampler (PyAV), chunk by chunk.

    swresample keeps its filter state between calls, so the output does not depend on how
    the input was cut into chunks (measured: identical for 10 ms and 2 s chunks).
    """

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self._rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)


class AudioBuffer:
    """The recent audio of a stream, addressed by sample index since the stream began.

    Chunks are kept as they came, so appending never re-copies what is already held.
    """

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0  # index of the first sample held
        self.end = 0  # index after the last sample held

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.end += samples.size

    def slice(self, start: int, end: int) -> np.ndarray:
        parts, position = [], self.start
        for chunk in self._chunks:
            chunk_end = position + chunk.size
            if chunk_end > start and position < end:
                parts.append(chunk[max(start - position, 0) : end - position])
            position = chunk_end
            if position >= end:
                break
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def drop_before(self, index: int) -> None:
        while self._chunks and self.start + self._chunks[0].size <= index:
            self.start += self._chunks.popleft().size


# --- the session ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Utterance:
    segment: int
    start: int  # sample index


@dataclass(frozen=True)
class _Closed:
    segment: int
    start: int
    end: int
    audio: np.ndarray


class LiveSession:
    """One live stream: mono float32 audio in, `Partial` and `Final` results out.

    Call `feed()` with each chunk in order, `finish()` at the end of the audio, and always
    `aclose()`. Results appear on `events` as they are ready, a `StreamError` there if the
    stream must end, and None after the last result once `finish()` has run. Times are
    seconds of this stream's audio.
    """

    def __init__(
        self,
        transcriber: Transcriber,
        options: DecodeOptions,
        *,
        sample_rate: int = SAMPLE_RATE,
        first_segment: int = 0,
    ) -> None:
        if not 8_000 <= sample_rate <= 192_000:
            raise UnsupportedData(
                f"Sample rate {sample_rate} Hz is not supported.", code="unsupported_sample_rate"
            )
        self._transcriber = transcriber
        self._options = options
        self._settings = transcriber.settings
        self._resample = Resampler(sample_rate) if sample_rate != SAMPLE_RATE else None
        self._max_utterance = int(self._settings.live_max_utterance_s * SAMPLE_RATE)
        self._vad: OnlineVad | None = None
        self._audio = AudioBuffer()
        self._open: _Utterance | None = None
        self._closed: asyncio.Queue[_Closed | None] = asyncio.Queue()
        self._pending = 0  # samples closed and still waiting for their final
        self._unfinished = 0  # utterances closed and still waiting for their final
        self._load = live_sessions(transcriber).load
        self._progress = asyncio.Condition()
        self._lock = asyncio.Lock()  # feed() and finish() in order, one at a time
        self._final_task: asyncio.Task[None] | None = None
        self._partial_task: asyncio.Task[None] | None = None
        self._last_partial = (0.0, 0)  # (loop time, sample index) of the last partial asked for
        self._finished = False
        self._finals_stopped = False
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.next_segment = first_segment

    async def feed(self, samples: np.ndarray) -> None:
        """Take the next chunk; waits (backpressure) while too much audio awaits its final."""
        async with self._lock:
            if self._finished:
                raise RuntimeError("feed() after finish() or aclose()")
            chunk = np.array(samples, dtype=np.float32).reshape(-1)  # a copy we own
            await self._take(self._resample(chunk) if self._resample else chunk)
        await self._wait_for_capacity()

    async def finish(self) -> None:
        """End of audio: close the open utterance, wait for every final, then put None."""
        async with self._lock:
            if self._finished:
                return
            if self._resample:
                await self._take(self._resample.flush())
            self._finished = True
            if self._open is not None:
                self._close_at(self._audio.end)
            if self._partial_task:
                self._partial_task.cancel()
            self._closed.put_nowait(None)
        if self._final_task:
            await self._final_task
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
        self._audio = AudioBuffer()
        self._vad = None

    # --- cutting utterances -------------------------------------------------------------------
    async def _take(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if self._vad is None:
            settings = self._settings
            self._vad = await to_thread.run_sync(
                OnlineVad, settings.live_vad_threshold, settings.live_end_silence_ms
            )
            self._final_task = asyncio.create_task(self._decode_finals())
        events = await to_thread.run_sync(self._vad, samples)
        self._audio.append(samples)
        for kind, position in events:
            self._cut_long(position)
            if kind == "start" and self._open is None:
                self._open_at(max(position, self._audio.start))
            elif kind == "end" and self._open is not None:
                self._close_at(position)
        self._cut_long(self._audio.end)
        self._audio.drop_before(self._open.start if self._open else self._audio.end - PREROLL)
        self._maybe_partial()

    def _cut_long(self, position: int) -> None:
        """Cut an utterance at exactly its maximum length, so cuts don't depend on chunking."""
        while self._open is not None and position - self._open.start >= self._max_utterance:
            cut = self._open.start + self._max_utterance
            self._close_at(cut)
            self._open_at(cut)

    def _open_at(self, start: int) -> None:
        self._open = _Utterance(self.next_segment, start)
        self.next_segment += 1
        self._last_partial = (asyncio.get_running_loop().time(), start)

    def _close_at(self, end: int) -> None:
        utterance, self._open = self._open, None
        assert utterance is not None
        audio = self._audio.slice(utterance.start, end)
        if audio.size < MIN_UTTERANCE:
            # A click, or the tail of a forced cut: too short for a word, and too short for
            # a partial to have shown it, so its number goes to the next utterance.
            if utterance.segment == self.next_segment - 1:
                self.next_segment -= 1
            return
        self._pending += audio.size
        self._unfinished += 1
        self._load.finals += 1
        self._closed.put_nowait(_Closed(utterance.segment, utterance.start, end, audio))

    # --- partial results ----------------------------------------------------------------------
    def _maybe_partial(self) -> None:
        """Ask for a partial when one is due, unless it would delay more important work.

        Skipped (not queued for later) while a partial is still pending or a final is
        waiting, in this stream or any other of the process: finals come first.
        """
        utterance = self._open
        if utterance is None or self._finished:
            return
        if self._load.finals or self._load.partials >= PARTIALS_IN_FLIGHT:
            return
        now, end = asyncio.get_running_loop().time(), self._audio.end
        interval = self._settings.live_partial_interval_s
        last_time, last_end = self._last_partial
        if (
            end - utterance.start < MIN_PARTIAL
            or now - last_time < interval
            or end - last_end < interval * SAMPLE_RATE
        ):
            return
        self._last_partial = (now, end)
        audio = self._audio.slice(utterance.start, end)
        self._load.partials += 1
        self._partial_task = asyncio.create_task(self._decode_partial(utterance, audio))
        self._partial_task.add_done_callback(self._partial_done)

    def _partial_done(self, task: asyncio.Task[None]) -> None:
        # a callback, not a `finally`: a task cancelled before it starts runs no finally
        self._load.partials -= 1

    async def _decode_partial(self, utterance: _Utterance, audio: np.ndarray) -> None:
        try:
            result = await self._transcriber.transcribe_utterance(audio, self._options)
        except ServiceError:
            return  # busy or stopping: a partial is only a preview, so skip it
        except Exception:
            log.exception("partial decode failed")
            return
        if self._open is utterance:  # else its final is on the way and replaces it
            segment = _first_segment(result)
            text = segment.text if segment else ""
            self.events.put_nowait(
                Partial(segment=utterance.segment, start=_seconds(utterance.start), text=text)
            )

    # --- final results ------------------------------------------------------------------------
    async def _decode_finals(self) -> None:
        """Decode closed utterances one after the other, so finals come out in order."""
        try:
            while (closed := await self._closed.get()) is not None:
                result = await self._decode_final(closed.audio)
                self.events.put_nowait(_final(closed, result))
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

    async def _decode_final(self, audio: np.ndarray) -> TranscriptionResult:
        deadline = time.monotonic() + BUSY_LIMIT_S
        while True:
            try:
                return await self._transcriber.transcribe_utterance(audio, self._options)
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


def _first_segment(result: TranscriptionResult) -> Any:
    segments = result.transcript.segments
    return segments[0] if segments else None


def _final(closed: _Closed, result: TranscriptionResult) -> Final:
    segment = _first_segment(result)
    return Final(
        segment=closed.segment,
        start=_seconds(closed.start),
        end=_seconds(closed.end),
        text=segment.text if segment else "",
        rich=segment.rich if segment else "",
        language=segment.language if segment else "",
        emotion=segment.emotion if segment else "",
        events=list(segment.events) if segment else [],
    )


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def drain(session: LiveSession) -> list[Event | None]:
    """Every event the session has ready now, without waiting."""
    events: list[Event | None] = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    return events
