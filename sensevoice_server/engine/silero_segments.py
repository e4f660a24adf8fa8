"""An upload's speech segments by silero VAD on onnxruntime: funasr's silero-vad path,
without torch.

funasr's `SileroVad` adapter (what `--vad-model silero-vad` ran before) calls silero's
`get_speech_timestamps` on the TorchScript model: a probability per 32 ms window (the last
window zero-padded), silero's `get_speech_timestamps_from_probs` over them, the samples
turned into milliseconds, and its own `_split_long_segments` at `max_single_segment_time`.
This does the same with silero's ONNX model (silero_onnx.py) and those same two functions,
taken from the installed libraries' files (library_source.py), so the segments are the same
(tests/unit/test_vad.py holds them to funasr's on the samples and a long clip).

It asks `check` before each block of windows (16 s of audio, a few ms of work), where
silero's loop called its progress callback after each window: that is where the VAD stage
stops part-way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sensevoice_server.engine.silero_onnx import WINDOW, SileroState
from sensevoice_server.library_source import library_function

SAMPLE_RATE = 16_000
BLOCK_WINDOWS = 512  # windows per model call: 16.4 s of audio (silero's own sequence default)
# funasr's SileroVad passes these to silero (its silero_* kwargs, which the service leaves
# at their defaults): threshold, min_speech_duration_ms, min_silence_duration_ms, speech_pad_ms
FUNASR_SILERO_OPTIONS = {
    "threshold": 0.5,
    "min_speech_duration_ms": 250,
    "min_silence_duration_ms": 100,
    "speech_pad_ms": 30,
}


class SileroSegments:
    """Segments [start_ms, end_ms] as funasr's silero-vad adapter finds them."""

    def __init__(self, max_single_segment_ms: int) -> None:
        self._max_single_segment_ms = max_single_segment_ms
        self._timestamps = library_function(
            "silero_vad", "utils_vad.py", "get_speech_timestamps_from_probs"
        )
        self._split_long = library_function(
            "funasr", "models/silero_vad/model.py", "_split_long_segments", owner="SileroVad"
        )

    def __call__(self, samples: np.ndarray, check: Callable[[float], None]) -> list[list[int]]:
        """`check(percent done)` is called before each block; it raises to stop."""
        windows = -(-samples.size // WINDOW)
        padded = np.zeros(windows * WINDOW, np.float32)  # silero pads the last window so
        padded[: samples.size] = samples
        state = SileroState()
        probabilities: list[float] = []
        for first in range(0, windows, BLOCK_WINDOWS):
            check(100 * first / windows)
            block = padded[first * WINDOW : (first + BLOCK_WINDOWS) * WINDOW]
            probabilities.extend(state.probabilities(block).tolist())
        stamps = self._timestamps(
            probabilities,
            sampling_rate=SAMPLE_RATE,
            audio_length_samples=samples.size,
            **FUNASR_SILERO_OPTIONS,
        )
        segments = [  # milliseconds as funasr's adapter makes them
            [int(stamp["start"] * 1000 / SAMPLE_RATE), int(stamp["end"] * 1000 / SAMPLE_RATE)]
            for stamp in stamps
        ]
        split: list[list[int]] = self._split_long(segments, self._max_single_segment_ms)
        return split
