"""silero VAD over one live stream, window by window, with the stream's own state."""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

import numpy as np

from sensevoice_server.pcm import SAMPLE_RATE

WINDOW = 512  # samples: silero's window at 16 kHz (32 ms)
SPEECH_PAD_MS = 30  # silero's default padding either side of detected speech

_model_lock = threading.Lock()


@functools.cache
def _silero_model() -> Any:
    from silero_vad import load_silero_vad

    return load_silero_vad()  # the TorchScript model shipped in the wheel: no download


class OnlineVad:
    """Speech starts and ends in a stream. Blocking: run it in a worker thread.

    The TorchScript model keeps its recurrent state inside itself, so every stream gets its
    own copy (about 2 MB, 10 ms to make); silero's VADIterator adds the start/end hysteresis.
    Costs about 10-30 ms of one core per second of audio.
    """

    def __init__(
        self, threshold: float, end_silence_ms: int, speech_pad_ms: int = SPEECH_PAD_MS
    ) -> None:
        from silero_vad import VADIterator

        with _model_lock:
            model = copy.deepcopy(_silero_model())
        self._iterator = VADIterator(
            model,
            threshold=threshold,
            sampling_rate=SAMPLE_RATE,
            min_silence_duration_ms=end_silence_ms,
            speech_pad_ms=speech_pad_ms,
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
        usable = data.size - data.size % WINDOW
        events: list[tuple[str, int]] = []
        for offset in range(0, usable, WINDOW):
            found = self._iterator(torch.from_numpy(data[offset : offset + WINDOW]))
            if found:
                events.extend(found.items())
        self._rest = data[usable:].copy()
        return events
