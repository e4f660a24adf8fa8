"""What the VAD thread does with a job: where its speech is (the VAD stage), the segments
cut out of it, and each segment's speaker when speaker labels are on.

Only the engine's VAD thread calls it: the VAD and CAM++ models are funasr models, not
thread-safe (docs/ARCHITECTURE.md, invariant 2). A job cancelled meanwhile (its client went
away) stops at the VAD's next chunk, or before the speaker labels: `Stopped` is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.engine.jobs import Job, WorkItem
from sensevoice_server.engine.vad import Stopped, VadStage, cut, runs_on_onnxruntime


def nothing() -> None:
    return None


def runs_in_torch(settings: EngineSettings) -> bool:
    """Whether the VAD thread's models run in torch: CAM++ and funasr's other VAD models
    do; silero and an FSMN VAD (fsmn-vad) run on onnxruntime."""
    return settings.speakers or not runs_on_onnxruntime(settings.vad_model)


class Segmenter:
    def __init__(self, settings: EngineSettings, warm_up: np.ndarray) -> None:
        self.vad = VadStage(
            settings.vad_model,
            max_single_segment_ms=settings.max_single_segment_ms,
            merge_length_s=settings.merge_length_s,
            device=settings.device,
        )
        self.vad.segments(warm_up)  # the first call pays one-time costs, not a user
        self.speakers: Any = None  # a SpeakerLabeler when speaker labels are on
        if settings.speakers:
            from sensevoice_server.engine.speakers import SpeakerLabeler

            self.speakers = SpeakerLabeler(settings.speaker_model, settings.device)
            self.speakers.label(warm_up, [(0.0, 1000.0)])

    def items(self, job: Job, between: Callable[[], None] = nothing) -> list[WorkItem]:
        """The job's segments as work for the model (none: no speech); `Stopped` when the
        job is cancelled before they are found. `between` runs between the chunks of the
        work (the VAD's windows or chunks, the speaker model's batches)."""

        def stop() -> bool:
            between()
            return job.cancelled

        segments = self.vad.segments(job.audio, stop=stop)
        labels = None
        if self.speakers is not None:
            if job.cancelled:
                raise Stopped
            labels = self.speakers.label(
                job.audio, segments, job.options.num_speakers, between=between
            )
        return job.items(segments, cut, labels)

    def identity(self) -> dict[str, str | None]:
        speakers = self.speakers
        return {"vad": identify(str(self.vad.model_dir)),
                "speakers": identify(str(speakers.model_dir)) if speakers else None}  # fmt: skip
