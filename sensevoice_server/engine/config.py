"""What the engine is told: the model, where it runs, how it batches and cuts audio.

The engine sees this slice, not the service's whole `Settings`: nothing about HTTP, live
streams or caches reaches it, and how deep its queue may grow is decided by the composition
root (which knows how many live streams share it), not worked out in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sensevoice_server.settings import Settings

CONCURRENT_BACKENDS = {"onnx", "openvino"}  # whose model takes calls from several threads
AUTO_CALLS = 2


@dataclass(frozen=True)
class EngineSettings:
    model: str
    vad_model: str
    device: str  # resolved: "cpu" or "cuda:N", never "auto"
    ncpu: int
    model_threads: int  # 0: auto (calls_at_once)
    backend: Literal["auto", "torch", "onnx", "openvino"]
    precision: Literal["auto", "fp32", "fp16", "int8", "bf16"]
    onnx_dir: str | None
    calibration_audio: str | None  # None: the shipped set (engine/calibration.py)
    batch_max_items: int  # 0: the device's default
    batch_size_s: int
    batch_wait_ms: float
    max_single_segment_ms: int
    merge_length_s: int
    keyword_boost: float
    speakers: bool
    speaker_model: str
    max_pending: int  # jobs submitted and not answered; one more is told Busy

    @classmethod
    def of(cls, settings: Settings, *, max_pending: int | None = None) -> EngineSettings:
        """The slice of `settings`; `max_pending` defaults to the upload queue alone."""
        return cls(
            model=settings.model,
            vad_model=settings.vad_model,
            device=settings.resolved_device(),
            ncpu=settings.ncpu,
            model_threads=settings.model_threads,
            backend=settings.backend,
            precision=settings.precision,
            onnx_dir=settings.onnx_dir,
            calibration_audio=settings.calibration_audio,
            batch_max_items=settings.batch_max_items,
            batch_size_s=settings.batch_size_s,
            batch_wait_ms=settings.batch_wait_ms,
            max_single_segment_ms=settings.max_single_segment_ms,
            merge_length_s=settings.merge_length_s,
            keyword_boost=settings.keyword_boost,
            speakers=settings.speakers,
            speaker_model=settings.speaker_model,
            max_pending=max_pending if max_pending is not None else settings.queue_size,
        )

    def calls_at_once(self, backend: str) -> int:
        """Model calls the engine runs at once. onnxruntime's `InferenceSession.run` is
        thread-safe (onnxruntime issue 19301), and one call keeps two cores only partly busy
        (its operators run one after another, most too small to split), so on a CPU two
        calls of one thread each decode about twice what one call of two threads does
        (docs/FACTS.md, "ONNX and onnxruntime"). funasr's modules take one call at a time."""
        if backend not in CONCURRENT_BACKENDS or self.device != "cpu":
            return 1
        return min(self.model_threads or AUTO_CALLS, self.ncpu)

    def threads_per_call(self, backend: str) -> int:
        return max(1, self.ncpu // self.calls_at_once(backend))
