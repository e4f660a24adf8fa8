"""The VAD stage: where an upload's speech is, cut as the reference pipeline cuts it.

The VAD model finds the pieces, then funasr's `merge_vad` joins them into segments of up
to `merge_length_s`: exactly what `generate(..., merge_vad=True)` does before decoding
(docs/ARCHITECTURE.md, "Reference behaviour"), as a stage of its own so the engine can batch
the segments of many uploads together and time each one. The two VADs the service names run
on onnxruntime, finding the segments funasr finds, without importing torch or funasr (about
540 MB resident): silero-vad with its own ONNX model (silero_segments.py), and an FSMN VAD
(fsmn-vad, the default, or a local directory funasr loads as FsmnVADStreaming) with an ONNX
export of its network made at first start (fsmn_segments.py). Any other funasr VAD model
runs through funasr's AutoModel. `merge_vad` is taken from funasr's file alone
(library_source.py) for every model.

An hour of audio keeps the VAD busy for seconds, so the stage can be stopped part-way (the
client went away): `segments(samples, stop)` asks `stop()` between the model's own chunks
and raises `Stopped`:

- FSMN: before each of funasr's 60 s chunks (a few tens of ms of work each);
- silero-vad: before each block of 512 windows (16 s of audio, a few ms of work); a local
  directory that funasr loads as silero: its adapter calls silero's
  `get_speech_timestamps`, whose `progress_tracking_callback` runs after each 32 ms window,
  and raising from it ends the call;
- any other model: one call, stopped only before it starts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np

from sensevoice_server.engine.auxiliary import load_auxiliary
from sensevoice_server.engine.export_cache import model_directory
from sensevoice_server.engine.fsmn_config import is_fsmn_vad
from sensevoice_server.errors import ModelLoadError
from sensevoice_server.library_source import library_function
from sensevoice_server.model_source import HUB_ALIASES

log = logging.getLogger(__name__)
SAMPLES_PER_MS = 16
SILERO = "silero-vad"  # the name funasr's AutoModel knows it by
FSMN_HUB_IDS = ("fsmn-vad", HUB_ALIASES["fsmn-vad"])  # known as FSMN before any download


class Stopped(Exception):
    """The VAD stage was stopped part-way: nobody wants its answer any more."""


def never() -> bool:
    return False


def runs_on_onnxruntime(vad_model: str) -> bool:
    """Whether `vad_model` runs on onnxruntime (silero, an FSMN VAD), not in torch; a hub
    id other than fsmn-vad's is not known before its download, and counts as torch."""
    if vad_model in (SILERO, *FSMN_HUB_IDS):
        return True
    return is_fsmn_vad(vad_model)


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
        try:
            directory = model_directory(vad_model)  # a hub id is downloaded first
        except Exception as error:  # modelscope raises several kinds
            raise ModelLoadError(
                f"--vad-model {vad_model}: could not download it: {error}"
            ) from error
        if is_fsmn_vad(directory):  # on the CPU whatever the device, as silero
            from sensevoice_server.engine.fsmn_segments import FsmnSegments

            fsmn = FsmnSegments(directory, max_single_segment_ms)
            self.model_dir = str(directory)
            self._find = lambda samples: fsmn(samples, self._check)
            return
        self._model, self.model_dir = load_auxiliary(
            "--vad-model", str(directory), device, max_single_segment_time=max_single_segment_ms
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
        from funasr.models.silero_vad.model import SileroVad

        model = self._model.model
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


def cut(samples: np.ndarray, segment: tuple[float, float]) -> np.ndarray:
    """A segment's samples, sliced as funasr slices them (slice_padding_audio_samples)."""
    start, end = segment
    return samples[int(start * SAMPLES_PER_MS) : min(int(end * SAMPLES_PER_MS), samples.size)]
