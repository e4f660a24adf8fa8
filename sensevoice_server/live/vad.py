"""silero VAD over one live stream, window by window, with the stream's own state.

silero's ONNX model on onnxruntime (engine/silero_onnx.py: one session for all streams, each
stream its own recurrent state) and silero's VADIterator start/end rule (hysteresis.py): the
events the TorchScript model and VADIterator gave, without torch.
"""

from __future__ import annotations

import numpy as np

from sensevoice_server.engine.silero_onnx import WINDOW, SileroState
from sensevoice_server.live.hysteresis import Hysteresis

SPEECH_PAD_MS = 30  # silero's default padding either side of detected speech


class OnlineVad:
    """Speech starts and ends in a stream. Blocking: run it in a worker thread.

    Each chunk's whole windows go to the model in one call; the rest waits for the next
    chunk, so how the stream is chunked does not change the events.
    """

    def __init__(
        self, threshold: float, end_silence_ms: int, speech_pad_ms: int = SPEECH_PAD_MS
    ) -> None:
        self._model = SileroState()
        self._hysteresis = Hysteresis(threshold, end_silence_ms, speech_pad_ms)
        self._rest = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> list[tuple[str, int]]:
        """Run the windows `samples` completes; return ("start" | "end", sample index) events."""
        data = np.concatenate((self._rest, samples)) if self._rest.size else samples
        usable = data.size - data.size % WINDOW
        self._rest = data[usable:].astype(np.float32, copy=True)
        events: list[tuple[str, int]] = []
        for probability in self._model.probabilities(data[:usable]).tolist():
            if (event := self._hysteresis.step(probability)) is not None:
                events.append(event)
        return events
