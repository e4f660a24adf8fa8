"""One live stream as a protocol drives it: the stream's rules, then its `LiveSession`.

Every protocol (the WebSocket route, the UI's Live tab, and the realtime protocol to come)
moves audio through a `LiveStream`, so the rules live here once:
- frames are gathered into chunks of at least MIN_FEED_S before the session sees them;
- `Pace` ends a stream that sends too fast, `Activity` one that sends too little (rules.py);
- the drain on shutdown (`stop`) ends every stream after the finals of what it sent.

A rule that ends a stream raises `Stop`: the protocol then calls `finish()`, sends the
finals that come out, and only then tells the client why (`Stop.error`) and closes. Nothing
a client sent is lost because the stream ended on the server's terms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from sensevoice_server.errors import StreamError
from sensevoice_server.live.audio import Gather
from sensevoice_server.live.rules import Activity, Pace, StreamRules
from sensevoice_server.live.session import LiveSession

log = logging.getLogger(__name__)

MIN_FEED_S = 0.05  # frames are gathered to this much audio before the session takes them
T = TypeVar("T")


class Stop(Exception):
    """The stream ends once the finals of what it sent are out; `error` says why."""

    def __init__(self, error: StreamError) -> None:
        super().__init__(error.message)
        self.error = error


class LiveStream:
    """Call `feed()` with each frame, `finish()` at the end, and let `LiveSessions.open`
    close it. Pull protocols wait for the client with `receive()`, which keeps the idle rule
    and wakes up for a drain; push protocols (the UI) ask `idle_left()` instead."""

    def __init__(
        self, session: LiveSession, rules: StreamRules, *, sample_rate: int, session_id: str
    ) -> None:
        self.session = session
        self.session_id = session_id  # a reconnect with it continues the segment numbering
        self._rate = sample_rate
        self._pace = Pace(rules.max_speed)
        self._activity = Activity(rules.idle_s, rules.min_speed)
        self._gather = Gather(int(sample_rate * MIN_FEED_S))
        self._lock = asyncio.Lock()  # feed() and finish() one at a time, in order
        self._ending: StreamError | None = None
        self._stopped = asyncio.Event()  # set by stop(): the server ends the stream
        self._finishing: asyncio.Task[None] | None = None
        self._finished = False
        self._closed = False
        self._waiting: asyncio.Timeout | None = None  # receive()'s wait for the client

    @property
    def stopped(self) -> asyncio.Event:
        """Set once the server ends the stream (a drain); `stop_reason` says why."""
        return self._stopped

    @property
    def stop_reason(self) -> StreamError | None:
        return self._ending

    async def feed(self, samples: np.ndarray) -> None:
        """Take one frame (mono float32 at the stream's rate); raises `Stop` when the stream
        must end: too fast, or the server is shutting down (the frame is not taken)."""
        async with self._lock:
            if self._ending is not None or self._finished:
                raise Stop(self._ending or StreamError("The stream has ended."))
            audio_s = samples.size / self._rate
            try:
                self._pace.take(audio_s)
            except StreamError as error:
                self._ending = error
                raise Stop(error) from None
            self._activity.heard(audio_s)
            gathered = self._gather.add(samples)
            if gathered is not None:
                with self._activity.server_busy():
                    await self.session.feed(gathered)

    async def receive(self, next_message: Callable[[], Awaitable[T]]) -> T:
        """The client's next message, waited for no longer than the idle rule allows.

        Raises `Stop` when the stream is idle or the server ends it meanwhile (a drain).
        """
        if self._ending is not None:
            raise Stop(self._ending)
        left = self._activity.time_left()
        if left <= 0:
            raise Stop(self._activity.idle_error())
        try:
            async with asyncio.timeout(left) as self._waiting:  # stop() makes it expire now
                return await next_message()
        except TimeoutError:
            raise Stop(self._ending or self._activity.idle_error()) from None
        finally:
            self._waiting = None

    def idle_left(self) -> float:
        """Seconds from now until the stream is idle (<= 0: idle now)."""
        return self._activity.time_left()

    async def commit(self) -> bool:
        """Close the open utterance at what was sent so far (the gathered rest goes in
        first); False when none is open. The stream goes on."""
        async with self._lock:
            if self._ending is not None or self._finished:
                raise Stop(self._ending or StreamError("The stream has ended."))
            rest = self._gather.flush()
            with self._activity.server_busy():
                if rest is not None:
                    await self.session.feed(rest)
                return await self.session.commit()

    async def finish(self) -> None:
        """End of audio: the gathered rest goes in, then every final comes out (the session's
        events end with None). Safe to call again and from two tasks."""
        async with self._lock:
            rest = None if self._finished else self._gather.flush()
            self._finished = True
            if rest is not None:
                with self._activity.server_busy():
                    await self.session.feed(rest)
        await self.session.finish()

    def stop(self, error: StreamError) -> None:
        """End the stream from the server's side (the drain): no more audio is taken, the
        finals of what was sent are decoded now (whether or not a protocol is waiting for the
        client), and `receive()` raises `Stop(error)`. Call on the stream's event loop."""
        if self._closed:  # closed between the drain's look at the open streams and now
            return
        if self._ending is None:
            self._ending = error
        self._stopped.set()
        if self._waiting is not None:
            self._waiting.reschedule(asyncio.get_running_loop().time())
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self.finish())
            self._finishing.add_done_callback(_log_failure)

    async def aclose(self) -> None:
        """Stop now, dropping what is not decoded yet (the client is gone, or it is over)."""
        self._closed = True
        if self._finishing is not None and not self._finishing.done():
            self._finishing.cancel()
            await asyncio.wait([self._finishing])
        await self.session.aclose()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # the session reports decode failures on its events; this is what is left (busy)
        log.info("live stream: finals at the drain failed: %s", error)
