"""Admission control for uploads: room is reserved before any work, and held until the end.

A refusal must cost nothing, so an upload takes a `Ticket` before it is decoded: one of
`queue_size` job places and, for its audio, a share of `queue_max_audio_s` (the seconds its
header declares, grown as decoding finds more), which bounds the decoded audio held in
memory. At most `decode_concurrency` uploads decode at once. The ticket is given back when
the transcript is ready, or the client gives up, or anything fails.

Before any of that, every transcription request holds its upload's bytes (`BytesHeld`, out
of `max_inflight_upload_mb`) from its first byte to its answer, cache hits included: that
bounds the spooled bodies many large uploads at once leave on disk (or in a tmpfs).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sensevoice_server.errors import Busy


class Admission:
    def __init__(
        self,
        *,
        max_jobs: int,
        max_audio_s: float,
        decode_concurrency: int,
        max_upload_bytes: int,
    ) -> None:
        self.max_jobs = max_jobs
        self.max_audio_s = max_audio_s
        self.max_upload_bytes = max_upload_bytes
        self._lock = threading.Lock()  # tickets grow from decoding threads
        self._jobs = 0
        self._audio_s = 0.0
        self._upload_bytes = 0
        self._decoding = asyncio.Semaphore(decode_concurrency)

    @property
    def jobs(self) -> int:
        """Uploads admitted and not finished (decoding, queued or running)."""
        return self._jobs

    @property
    def audio_s(self) -> float:
        return self._audio_s

    @property
    def upload_bytes(self) -> int:
        """Upload bytes held by requests now (declared, or received so far)."""
        return self._upload_bytes

    def hold_bytes(self, size: int) -> BytesHeld:
        """Hold `size` bytes of upload for one request (give them back with `release()`);
        Busy if they do not fit beside what other requests hold."""
        held = BytesHeld(self)
        held.grow_to(size)
        return held

    def refusal(self) -> Busy | None:
        """The answer a new upload would get now, or None if there is room (no reservation)."""
        with self._lock:
            if self._jobs >= self.max_jobs:
                return self._busy(f"{self._jobs} transcriptions are already waiting or running")
            if self._audio_s >= self.max_audio_s:
                return self._busy(f"{self._audio_s / 60:.0f} minutes of audio are already queued")
        return None

    @asynccontextmanager
    async def ticket(self, declared_s: float) -> AsyncIterator[Ticket]:
        """A reserved place for one upload, given back on exit; Busy if there is none."""
        ticket = Ticket(self)
        with self._lock:
            if self._jobs >= self.max_jobs:
                raise self._busy(f"{self._jobs} transcriptions are already waiting or running")
            self._jobs += 1
        try:
            ticket.grow_to(declared_s)
            yield ticket
        finally:
            with self._lock:
                self._jobs -= 1
                self._audio_s -= ticket.audio_s

    @asynccontextmanager
    async def decoding(self) -> AsyncIterator[None]:
        """One of the `decode_concurrency` places to decode in."""
        async with self._decoding:
            yield

    def _busy(self, why: str) -> Busy:
        return Busy(f"The server is busy: {why}. Try again shortly.", retry_after=2)

    def _grow(self, ticket: Ticket, seconds: float) -> None:
        with self._lock:
            extra = seconds - ticket.audio_s
            if extra <= 0:
                return
            # One upload alone is always let in (the duration limit bounds it), or a file
            # longer than the whole budget could never be transcribed.
            if self._audio_s + extra > self.max_audio_s and self._audio_s > ticket.audio_s:
                minutes = (self._audio_s - ticket.audio_s) / 60
                raise self._busy(f"{minutes:.0f} minutes of audio are already queued")
            self._audio_s += extra
            ticket.audio_s = seconds

    def _grow_bytes(self, held: BytesHeld, size: int) -> None:
        with self._lock:
            extra = size - held.size
            others = self._upload_bytes - held.size
            # one request alone is always let in (the body limit bounds it); a new one that
            # holds nothing yet (chunked) is checked too, so a full budget refuses it
            growing = extra > 0 or not held.size
            if growing and others and others + size > self.max_upload_bytes:
                raise self._busy(f"{others / 1e6:.0f} MB of uploads are already in progress")
            self._upload_bytes += max(extra, 0)
            held.size = max(size, held.size)

    def _release_bytes(self, held: BytesHeld) -> None:
        with self._lock:
            self._upload_bytes -= held.size
            held.size = 0


class Ticket:
    """One upload's reservation: its job place and the audio seconds it holds."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.audio_s = 0.0

    def grow_to(self, seconds: float) -> None:
        """Hold `seconds` of audio (never shrinks); Busy if the budget has no room for it."""
        self._admission._grow(self, seconds)


class BytesHeld:
    """One request's upload bytes, held from its first byte to its answer."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.size = 0

    def grow_to(self, size: int) -> None:
        """Hold `size` bytes (never shrinks); Busy if the budget has no room for them."""
        self._admission._grow_bytes(self, size)

    def release(self) -> None:
        """Give the bytes back (idempotent)."""
        self._admission._release_bytes(self)
