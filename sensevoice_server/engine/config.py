"""What the engine is told: the model, where it runs, how it batches and cuts audio.

The engine sees this slice, not the service's whole `Settings`: nothing about HTTP, live
streams or caches reaches it, and how deep its queue may grow is decided by the composition
root (which knows how many live streams share it), not worked out in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sensevoice_server.settings import Settings


@dataclass(frozen=True)
class EngineSettings:
    model: str
    vad_model: str
    device: str  # resolved: "cpu" or "cuda:N", never "auto"
    ncpu: int
    backend: Literal["auto", "torch", "onnx"]
    precision: Literal["auto", "fp32", "fp16", "int8"]
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
