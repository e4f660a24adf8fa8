"""The VAD stage: where an upload's speech is, cut as the reference pipeline cuts it.

funasr's VAD model (fsmn-vad, silero-vad or a local directory) runs through its own
AutoModel, then funasr's `merge_vad` joins the pieces into segments of up to
`merge_length_s`: exactly what `generate(..., merge_vad=True)` does before decoding
(DESIGN.md, "Reference behaviour"), as a stage of its own so the engine can batch the
segments of many uploads together and time each one.
"""

from __future__ import annotations

import logging

import numpy as np

from sensevoice_server.engine.auxiliary import load_auxiliary

log = logging.getLogger(__name__)
SAMPLES_PER_MS = 16


class VadStage:
    """One VAD model, used by one thread only (funasr models are not thread-safe)."""

    def __init__(
        self, vad_model: str, *, max_single_segment_ms: int, merge_length_s: int, device: str
    ) -> None:
        self._model, self.model_dir = load_auxiliary(
            "--vad-model", vad_model, device, max_single_segment_time=max_single_segment_ms
        )
        self.merge_ms = merge_length_s * 1000

    def segments(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """Speech segments as (start_ms, end_ms), merged as the reference merges them."""
        from funasr.utils.vad_utils import merge_vad

        found = self._model.generate(input=samples)
        value = found[0]["value"] if found else []
        return [(start, end) for start, end in merge_vad(value, self.merge_ms)]


def cut(samples: np.ndarray, segment: tuple[float, float]) -> np.ndarray:
    """A segment's samples, sliced as funasr slices them (slice_padding_audio_samples)."""
    start, end = segment
    return samples[int(start * SAMPLES_PER_MS) : min(int(end * SAMPLES_PER_MS), samples.size)]
