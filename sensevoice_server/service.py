"""The Transcriber: the one path every front end takes from uploaded bytes to a transcript.

Front ends (the Gradio UI, the HTTP API, batch, live-stream finals) translate their own
protocol into a call here and the result back; none of them calls funasr itself
(DESIGN.md, "The one path").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from anyio import to_thread

from sensevoice_server import audio
from sensevoice_server.engine import DecodeOptions, Engine, EngineResult, Progress
from sensevoice_server.errors import BadRequest
from sensevoice_server.metrics import Metrics
from sensevoice_server.settings import LANGUAGES, Settings
from sensevoice_server.transcript import Transcript, parse_segment


@dataclass(frozen=True)
class TranscriptionResult:
    transcript: Transcript
    processing_ms: float  # from the bytes arriving here to the transcript being ready
    inference_ms: float  # the model's share of it
    queue_wait_ms: float  # time spent waiting for the worker
    from_cache: bool
    model: str


class Transcriber:
    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.metrics.watch_engine(lambda: engine.queue_depth, lambda: float(engine.ready))
        self.limits = audio.AudioLimits(settings.max_upload_bytes, settings.max_duration_s)

    async def transcribe(
        self, data: bytes, options: DecodeOptions, progress: Progress | None = None
    ) -> TranscriptionResult:
        """Decode, queue for the model, and structure the result.

        Raises a `ServiceError` subclass for anything the caller did wrong or should retry.
        """
        check_options(options)
        started = time.perf_counter()
        samples = await to_thread.run_sync(audio.decode, data, self.limits)
        future = self.engine.submit(samples, options, progress=progress)
        result = await asyncio.wrap_future(future)
        transcript = to_transcript(result, audio.duration_s(samples))
        processing_s = time.perf_counter() - started
        self.metrics.observe_transcript(transcript, processing_s)
        return TranscriptionResult(
            transcript=transcript,
            processing_ms=processing_s * 1000,
            inference_ms=result.inference_s * 1000,
            queue_wait_ms=result.queue_wait_s * 1000,
            from_cache=False,
            model=self.settings.served_model_name,
        )


def check_options(options: DecodeOptions) -> None:
    if options.language not in LANGUAGES:
        raise BadRequest(
            f"Unknown language {options.language!r}; choose one of {', '.join(LANGUAGES)}."
        )


def to_transcript(result: EngineResult, duration: float) -> Transcript:
    return Transcript(
        duration=round(duration, 3),
        segments=[
            parse_segment(s.text, s.start_ms / 1000, min(s.end_ms / 1000, duration))
            for s in result.segments
        ],
    )
