"""The live streams of one process: how many may run, and where ended ones stopped.

Built once by the composition root (app.py) and handed to both front ends, which open every
stream through `LiveSessions.open`, one async context manager for reserve, claim, run and
release, so neither can leak a place or forget a session id.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Gauge

from sensevoice_server.errors import PolicyViolation, TryAgainLater
from sensevoice_server.live.session import Decoder, LiveSession, LiveSettings, StreamLoad
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
        self, settings: Settings, decoder: Decoder, registry: CollectorRegistry | None = None
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
        """Take one of the process's places, or refuse with 'try again later' (or 'off')."""
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

    @asynccontextmanager
    async def open(
        self,
        options: DecodeOptions,
        *,
        sample_rate: int,
        session_id: str | None = None,
        slot: Slot | None = None,
    ) -> AsyncIterator[LiveSession]:
        """A running session in a place of its own (`slot`, reserved earlier, or a new one);
        on exit the session is closed and the place released, whatever happened."""
        slot = slot or self.reserve()
        session: LiveSession | None = None
        try:
            first_segment = slot.claim(session_id)
            session = LiveSession(
                self._decoder, options, self._live, self.load,
                sample_rate=sample_rate, first_segment=first_segment,
            )  # fmt: skip
            self.load.sessions += 1
            yield session
        finally:
            if session is not None:
                self.load.sessions -= 1
                await session.aclose()
            slot.release(session.next_segment if session else None)

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
