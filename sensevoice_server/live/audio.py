"""A live stream's audio on its way in: gathered, resampled to 16 kHz, kept by sample index."""

from __future__ import annotations

from collections import deque

import av
import numpy as np

from sensevoice_server.pcm import SAMPLE_RATE


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


class Gather:
    """Small frames gathered into chunks of at least `least` samples before they go in.

    What a chunk costs a session (a trip to the VAD's thread, a resampler call) is mostly per
    call, not per sample: fed one by one, one-sample frames cost thousands of times their audio.
    """

    def __init__(self, least: int) -> None:
        self._least = max(1, least)
        self._parts: list[np.ndarray] = []
        self._size = 0

    def add(self, samples: np.ndarray) -> np.ndarray | None:
        """Keep `samples`; return everything kept once it reaches the least size."""
        self._parts.append(samples)
        self._size += samples.size
        return self.flush() if self._size >= self._least else None

    def flush(self) -> np.ndarray | None:
        """Everything kept (None if nothing), and start again."""
        if not self._parts:
            return None
        gathered = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts, self._size = [], 0
        return gathered
