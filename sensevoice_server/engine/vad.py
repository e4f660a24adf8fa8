"""The VAD stage: where an upload's speech is, cut as the reference pipeline cuts it.

funasr's VAD model (fsmn-vad or a local directory) runs through its own AutoModel, then
funasr's `merge_vad` joins the pieces into segments of up to `merge_length_s`: exactly what
`generate(..., merge_vad=True)` does before decoding (docs/ARCHITECTURE.md, "Reference
behaviour"), as a stage of its own so the engine can batch the segments of many uploads
together and time each one. silero-vad is the exception: its ONNX model runs on onnxruntime
(silero_segments.py), finding the segments funasr's silero adapter finds, without importing
torch or funasr (about 540 MB resident); `merge_vad` is taken from funasr's file alone
(library_source.py) for every model.

An hour of audio keeps the VAD busy for seconds, so the stage can be stopped part-way (the
client went away): `segments(samples, stop)` asks `stop()` between the model's own chunks
and raises `Stopped`. funasr's `generate()` is one blocking call with no way to stop it, so
each model is run in a way that gives it a place to stop without changing what it finds:

- FSMN (fsmn-vad): funasr already runs it over 60 s chunks, carrying its state from one to
  the next in a `cache` dict; fed one chunk per `generate()` call with that cache (funasr's
  streaming interface, `is_final` on the last), it makes exactly the same computations, so
  the segments are identical (tests/unit/test_vad.py holds them to one call's);
- Silero (silero-vad, on onnxruntime): asked before each block of 512 windows (16 s of
  audio, a few ms of work); a local directory that funasr loads as silero: its adapter calls
  silero's `get_speech_timestamps`, whose `progress_tracking_callback` runs after each 32 ms
  window, and raising from it ends the call;
- any other model: one call, stopped only before it starts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from sensevoice_server.engine.auxiliary import load_auxiliary
from sensevoice_server.library_source import library_function

log = logging.getLogger(__name__)
SAMPLES_PER_MS = 16
FSMN_CHUNK_MS = 60_000  # funasr's default `chunk_size` for an offline FSMN VAD call
SILERO = "silero-vad"  # the name funasr's AutoModel knows it by


class Stopped(Exception):
    """The VAD stage was stopped part-way: nobody wants its answer any more."""


def never() -> bool:
    return False


class VadStage:
    """One VAD model, used by one thread only (funasr models are not thread-safe)."""

    def __init__(
        self, vad_model: str, *, max_single_segment_ms: int, merge_length_s: int, device: str
    ) -> None:
        self.merge_ms = merge_length_s * 1000
        self._stop: Callable[[], bool] = never
        self._merge = library_function("funasr", "utils/vad_utils.py", "merge_vad")
        if vad_model == SILERO:  # on the CPU whatever the device: a GPU gains nothing here
            from sensevoice_server.engine import silero_onnx
            from sensevoice_server.engine.silero_segments import SileroSegments

            silero = SileroSegments(max_single_segment_ms)
            self.model_dir = str(silero_onnx.model_path())  # its content hash identifies it
            self._find: Callable[[np.ndarray], list[list[int]]] = lambda samples: silero(
                samples, self._check
            )
            return
        self._model, self.model_dir = load_auxiliary(
            "--vad-model", vad_model, device, max_single_segment_time=max_single_segment_ms
        )
        self._find = self._runner()

    def segments(
        self, samples: np.ndarray, stop: Callable[[], bool] = never
    ) -> list[tuple[float, float]]:
        """Speech segments as (start_ms, end_ms), merged as the reference merges them.

        Raises `Stopped` once `stop()` is true, asked between chunks of the model's work.
        """
        if stop():
            raise Stopped
        self._stop = stop
        try:
            value = self._find(samples)
        finally:
            self._stop = never
        return [(start, end) for start, end in self._merge(value, self.merge_ms)]

    # --- how each kind of model is run -----------------------------------------------------
    def _runner(self) -> Callable[[np.ndarray], list[list[int]]]:
        from funasr.models.fsmn_vad_streaming.model import FsmnVADStreaming
        from funasr.models.silero_vad.model import SileroVad

        model = self._model.model
        if isinstance(model, FsmnVADStreaming):
            return self._fsmn_in_chunks
        if isinstance(model, SileroVad):  # a local directory configured as silero
            # the adapter keeps silero's function as an attribute and calls it without a
            # callback: this one is called after every window, and raises when stopped
            model.get_speech_timestamps = functools.partial(
                model.get_speech_timestamps, progress_tracking_callback=self._check
            )
        return self._in_one_call

    def _check(self, _percent: float) -> None:
        if self._stop():
            raise Stopped

    def _in_one_call(self, samples: np.ndarray) -> list[list[int]]:
        found = self._model.generate(input=samples)
        return list(found[0]["value"]) if found else []

    def _fsmn_in_chunks(self, samples: np.ndarray) -> list[list[int]]:
        """One `generate()` call per 60 s chunk, the model's state carried in `cache`: the
        chunks one call would make (each but the last a whole chunk, so nothing is held back
        between calls), hence its segments, with a place to stop between them."""
        step = int(self._model.kwargs.get("chunk_size", FSMN_CHUNK_MS)) * SAMPLES_PER_MS
        cache: dict[str, Any] = {}
        found: list[list[int]] = []
        for start in range(0, max(samples.size, 1), step):
            self._check(100 * start / max(samples.size, 1))
            last = start + step >= samples.size
            out = self._model.generate(
                input=samples[start : start + step], cache=cache, is_final=last
            )
            found.extend(out[0]["value"] if out else [])
        return found


def cut(samples: np.ndarray, segment: tuple[float, float]) -> np.ndarray:
    """A segment's samples, sliced as funasr slices them (slice_padding_audio_samples)."""
    start, end = segment
    return samples[int(start * SAMPLES_PER_MS) : min(int(end * SAMPLES_PER_MS), samples.size)]
