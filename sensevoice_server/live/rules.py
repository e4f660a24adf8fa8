"""The rules a live stream's audio obeys, whatever protocol carries it: not too fast, not too
slow. Pure bookkeeping over a clock (tests pass their own); `LiveStream` (stream.py) applies
them to every frame.

- `Pace`: a stream may send audio at most `max_speed` times faster than real time, once it is
  AHEAD_ALLOWANCE_S of audio ahead of that pace. Each frame counts as at least FRAME_FLOOR_S,
  so a flood of tiny frames (whose cost is per frame, not per sample) is too fast as well.
- `Activity`: a stream must keep sending audio at `min_speed` of real time; each second of
  audio buys 1/min_speed seconds of quiet, up to the idle window. A stream that falls behind
  by the window is idle. Time the server spends on the stream (waiting for the model) does
  not count, so a busy server never makes its own clients idle.

Both are the generic cell rate algorithm (GCRA, as in ATM traffic policing): one "due" time
per stream instead of a window of timestamps. Written here because the rate limiters at hand
count whole requests against wall time; these count seconds of audio, and `Activity` runs on
a clock that stops while the server works.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sensevoice_server.errors import PolicyViolation

AHEAD_ALLOWANCE_S = 60.0  # audio a stream may send ahead of the pace: a short file at once
FRAME_FLOOR_S = 0.005  # a frame counts as at least this much audio towards the pace

Clock = Callable[[], float]


@dataclass(frozen=True)
class StreamRules:
    """The settings both rules take (from `Settings`: live_idle_timeout_s, live_min_speed,
    live_max_speed)."""

    idle_s: float
    min_speed: float
    max_speed: float


class Pace:
    """Refuses audio that runs too far ahead of `max_speed` times real time."""

    def __init__(self, max_speed: float, clock: Clock = time.monotonic) -> None:
        self._max_speed = max_speed
        self._clock = clock
        self._due = clock()  # when the audio counted so far is due at the maximum pace

    def take(self, audio_s: float) -> None:
        """Count one frame of `audio_s` seconds, or raise PolicyViolation (too_fast)."""
        now = self._clock()
        due = max(self._due, now) + max(audio_s, FRAME_FLOOR_S) / self._max_speed
        if (due - now) * self._max_speed > AHEAD_ALLOWANCE_S:
            raise PolicyViolation(
                f"The stream sent audio faster than {self._max_speed:g}x real time for too "
                f"long (each frame counts as at least {FRAME_FLOOR_S * 1000:g} ms): send audio "
                "as it is recorded, in frames of 20 ms or more.",
                "too_fast",
            )
        self._due = due


class Activity:
    """Tells when a stream has sent too little audio for too long: idle."""

    def __init__(self, window_s: float, min_speed: float, clock: Clock = time.monotonic) -> None:
        self._window = window_s
        self._min_speed = min_speed
        self._clock = clock
        self._paused = 0.0  # server time so far, which does not count
        self._busy = 0  # nested `server_busy()` sections open now
        self._busy_since = 0.0
        self._quiet_until = self._now() + window_s

    def heard(self, audio_s: float) -> None:
        """The client sent `audio_s` seconds of audio: more quiet time, up to the window."""
        now = self._now()
        earned = audio_s / self._min_speed if self._min_speed else math.inf
        self._quiet_until = min(now + self._window, self._quiet_until + earned)

    def time_left(self) -> float:
        """Seconds the stream may stay quiet from now before it is idle (<= 0: idle now)."""
        return self._quiet_until - self._now()

    def idle_error(self) -> PolicyViolation:
        share = f" and at least {self._min_speed:.0%} of real time" if self._min_speed else ""
        return PolicyViolation(
            f"The stream sent too little audio for {self._window:g} s (a stream must keep "
            f"sending audio{share}); closed as idle.",
            "idle_timeout",
        )

    @contextmanager
    def server_busy(self) -> Iterator[None]:
        """Time inside does not count: the server, not the client, is what is slow."""
        if not self._busy:
            self._busy_since = self._clock()
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._paused += self._clock() - self._busy_since

    def _now(self) -> float:
        busy_now = self._clock() - self._busy_since if self._busy else 0.0
        return self._clock() - self._paused - busy_now
