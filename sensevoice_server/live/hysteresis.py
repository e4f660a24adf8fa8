"""silero's `VADIterator` start/end rule over a stream's speech probabilities, in plain Python.

The rule (silero_vad/utils_vad.py, `VADIterator.__call__`): speech starts at the first window
at or above `threshold` (reported `speech_pad` plus one window early); once in speech, a
window below `threshold - 0.15` marks a possible end, which becomes the end when no window
reaches `threshold` again for `min_silence` samples (reported `speech_pad` minus one window
after that first quiet window). Gap filled: VADIterator runs the model itself and is written
in torch (`torch.no_grad`, tensors in), and importing it imports torch; this takes the
probabilities silero_onnx.py computes. tests/unit/test_silero_onnx.py holds it to
VADIterator on the same probabilities.
"""

from __future__ import annotations

from sensevoice_server.engine.silero_onnx import WINDOW
from sensevoice_server.pcm import SAMPLE_RATE

NEGATIVE_MARGIN = 0.15  # VADIterator ends speech this far below the threshold


class Hysteresis:
    """One stream's speech state; `step(probability)` per 32 ms window, in order."""

    def __init__(self, threshold: float, min_silence_ms: int, speech_pad_ms: int) -> None:
        self.threshold = threshold
        self.min_silence_samples = SAMPLE_RATE * min_silence_ms / 1000  # floats, as silero's
        self.speech_pad_samples = SAMPLE_RATE * speech_pad_ms / 1000
        self.triggered = False
        self.temp_end = 0
        self.current_sample = 0

    def step(self, probability: float) -> tuple[str, int] | None:
        """("start" | "end", sample index) when this window starts or ends speech."""
        self.current_sample += WINDOW
        speech = probability >= self.threshold
        if speech and self.temp_end:
            self.temp_end = 0
        if speech and not self.triggered:
            self.triggered = True
            start = max(0, self.current_sample - self.speech_pad_samples - WINDOW)
            return "start", int(start)
        if probability < self.threshold - NEGATIVE_MARGIN and self.triggered:
            if not self.temp_end:
                self.temp_end = self.current_sample
            if self.current_sample - self.temp_end < self.min_silence_samples:
                return None
            end = self.temp_end + self.speech_pad_samples - WINDOW
            self.temp_end = 0
            self.triggered = False
            return "end", int(end)
        return None
