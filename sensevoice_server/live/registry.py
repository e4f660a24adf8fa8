"""The live streams of one process: how many may run, where ended ones stopped, the drain.

Built once by the composition root (app.py) and handed to every front end, which opens every
stream through `LiveSessions.open`, one async context manager for reserve, claim, run and
release, so none can leak a place or forget a session id. A front end opens a stream only
once the client has said what it sends (a valid config), so silent connections hold nothing.

On SIGTERM the server calls `begin_drain()` then `wait_closed()` (from its drain thread):
every open stream is stopped, decodes what it was sent and closes itself (`LiveStream.stop`).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Gauge

from sensevoice_server.errors import GoingAway, PolicyViolation, TryAgainLater
from sensevoice_server.live.rules import StreamRules
from sensevoice_server.live.session import (
    FinalDecoder,
    LiveSession,
    LiveSettings,
    StreamLoad,
    TurnDetection,
)
from sensevoice_server.live.stream import LiveStream
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings

RESUME_MAX = 1024  # ended session ids remembered for reconnects


class Slot:
    """One reserved live-session place; released exactly once, however the stream ends."""

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


class LiveSessions:
    """A bounded number of streams, and where recently ended ones stopped.

    A stream is pinned to one process (nginx keeps a WebSocket on one upstream), so a client
    that reconnects with the same session_id to the same process continues its segment
    numbering from here. Ended ids are kept for `live_resume_ttl_s`, the latest RESUME_MAX.
    """

    def __init__(
        self, settings: Settings, decoder: FinalDecoder, registry: CollectorRegistry | None = None
    ) -> None:
        self._max = settings.live_max_sessions
        self._ttl = settings.live_resume_ttl_s
        self._decoder = decoder
        self._live = LiveSettings(
            vad_threshold=settings.live_vad_threshold,
            end_silence_ms=settings.live_end_silence_ms,
            max_utterance_s=settings.live_max_utterance_s,
            partial_interval_s=settings.live_partial_interval_s,
        )
        self._rules = StreamRules(
            idle_s=settings.live_idle_timeout_s,
            min_speed=settings.live_min_speed,
            max_speed=settings.live_max_speed,
        )
        # the UI's state cleanup may release from another thread, the drain waits in one
        self._lock = threading.Lock()
        self._closed = threading.Condition(self._lock)
        self._slots = 0
        self._draining = False
        self._streams: dict[LiveStream, asyncio.AbstractEventLoop] = {}
        self._active: set[str] = set()
        self._ended: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.load = StreamLoad()
        if registry is not None:
            gauge = Gauge(
                "sensevoice_live_sessions", "Live streams open now (WebSocket and UI).",
                registry=registry,
            )  # fmt: skip
            gauge.set_function(lambda: self.count)

    def default_turns(self) -> TurnDetection:
        """How streams are cut unless a stream says otherwise (the server's settings)."""
        live = self._live
        return TurnDetection(live.vad_threshold, live.end_silence_ms, live.speech_pad_ms)

    @property
    def count(self) -> int:
        return self._slots

    def reserve(self) -> Slot:
        """Take one of the process's places, or refuse with 'try again later' (or 'off', or
        'going away' once the drain has begun)."""
        with self._lock:
            if self._max == 0:
                raise PolicyViolation("Live streaming is turned off on this server.", "disabled")
            if self._draining:
                raise going_away()
            if self._slots >= self._max:
                raise TryAgainLater(
                    f"This server already runs its maximum of {self._max} live streams; "
                    "try again later or connect to another server.",
                    code="too_many_sessions",
                )
            self._slots += 1
        return Slot(self)

    @asynccontextmanager
    async def open(
        self,
        options: DecodeOptions,
        *,
        sample_rate: int,
        session_id: str | None = None,
        turns: TurnDetection | None = None,
    ) -> AsyncIterator[LiveStream]:
        """A running stream in a place of its own; on exit the stream is closed and the place
        released, whatever happened. `turns` overrides the server's utterance cutting for
        this stream."""
        slot = self.reserve()
        stream: LiveStream | None = None
        try:
            first_segment = slot.claim(session_id)
            live = turns.applied(self._live) if turns else self._live
            session = LiveSession(
                self._decoder, options, live, self.load,
                sample_rate=sample_rate, first_segment=first_segment,
            )  # fmt: skip
            assert slot.session_id is not None
            stream = LiveStream(
                session, self._rules, sample_rate=sample_rate, session_id=slot.session_id
            )
            self._track(stream)
            self.load.sessions += 1
            yield stream
        finally:
            if stream is not None:
                self.load.sessions -= 1
                with self._lock:
                    self._streams.pop(stream, None)
                await stream.aclose()
            slot.release(stream.session.next_segment if stream else None)

    # --- the drain ------------------------------------------------------------------------
    def begin_drain(self) -> None:
        """Refuse new streams and stop every open one (thread-safe): each decodes what it
        was sent, its protocol sends those finals, then says the server is going away."""
        with self._lock:
            self._draining = True
            streams = list(self._streams.items())
        for stream, loop in streams:
            loop.call_soon_threadsafe(stream.stop, going_away())

    def wait_closed(self, timeout: float) -> bool:
        """Block until no stream is open (False if `timeout` passed first). Thread-safe."""
        with self._closed:
            return self._closed.wait_for(lambda: self._slots == 0, timeout)

    def _track(self, stream: LiveStream) -> None:
        with self._lock:
            self._streams[stream] = asyncio.get_running_loop()
            draining = self._draining
        if draining:  # opened just as the drain began
            stream.stop(going_away())

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
            self._closed.notify_all()
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


def going_away() -> GoingAway:
    return GoingAway("The server is shutting down; reconnect (to another server).")
