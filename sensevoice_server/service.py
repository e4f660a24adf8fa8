"""The Transcriber: the one path every front end takes from uploaded bytes to a transcript.

Front ends (the Gradio UI, the HTTP API, batch, live-stream finals) translate their own
protocol into a call here and the result back; none of them calls funasr itself
(DESIGN.md, "The one path"). The path: upload-bytes cache key -> decode -> PCM cache key
(identical concurrent requests computed once) -> engine -> cache.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from anyio import to_thread

from sensevoice_server import audio
from sensevoice_server.cache import ResultCache, cache_key, open_cache, sha256_hex
from sensevoice_server.engine import DecodeOptions, Engine, EngineResult, Priority, Progress
from sensevoice_server.errors import BadRequest, NotReady
from sensevoice_server.metrics import Metrics
from sensevoice_server.settings import LANGUAGES, Settings
from sensevoice_server.transcript import Transcript, parse_segment


@dataclass(frozen=True)
class TranscriptionResult:
    transcript: Transcript
    processing_ms: float  # from the bytes arriving here to the transcript being ready
    inference_ms: float  # the model's share of it (as first computed, for a cached result)
    queue_wait_ms: float  # time spent waiting for the worker (0 for a cached result)
    from_cache: bool
    model: str


class Transcriber:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: Metrics | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.limits = audio.AudioLimits(settings.max_upload_bytes, settings.max_duration_s)
        self.cache = cache or open_cache(
            settings.cache_url,
            max_bytes=int(settings.cache_max_mb * 1_000_000),
            ttl_s=settings.cache_ttl_s,
        )
        self.metrics = metrics or Metrics()
        self.metrics.watch_engine(lambda: engine.queue_depth, lambda: float(engine.ready))
        self.metrics.watch_cache(self.cache)

    async def lookup(self, data: bytes, options: DecodeOptions) -> TranscriptionResult | None:
        """A cached answer for these exact upload bytes, without decoding them; else None."""
        check_options(options)
        return await self._lookup(self._key("bytes", data, options), time.perf_counter())

    async def _lookup(self, bytes_key: str, started: float) -> TranscriptionResult | None:
        cached = await self.cache.aget(bytes_key, count_miss=False)
        if cached is None:
            return None
        result = self._result(cached, started, from_cache=True)
        self.metrics.observe_transcript(result.transcript, result.processing_ms / 1000)
        return result

    async def transcribe(
        self,
        data: bytes,
        options: DecodeOptions,
        progress: Progress | None = None,
        *,
        looked_up: bool = False,
    ) -> TranscriptionResult:
        """Answer an upload from the cache, or decode it, run the model and cache the result.

        `looked_up=True` when the caller already tried `lookup()` (batch requests look up
        every file first). Raises a `ServiceError` subclass for anything the caller did
        wrong or should retry.
        """
        check_options(options)
        started = time.perf_counter()
        bytes_key = self._key("bytes", data, options)
        if not looked_up and (hit := await self._lookup(bytes_key, started)):
            return hit
        samples = await to_thread.run_sync(audio.decode, data, self.limits)

        async def compute() -> dict[str, Any]:
            result = await self._run(samples, options, progress=progress)
            return {"transcript": result.transcript.to_dict(), "inference_ms": result.inference_ms,
                    "queue_wait_ms": result.queue_wait_ms}  # fmt: skip

        value, from_cache = await self.cache.get_or_compute(
            self._key("pcm", samples.tobytes(), options), compute
        )
        await self.cache.aset(bytes_key, value)
        result = self._result(value, started, from_cache)
        self.metrics.observe_transcript(result.transcript, result.processing_ms / 1000)
        return result

    async def transcribe_utterance(
        self, samples: np.ndarray, options: DecodeOptions
    ) -> TranscriptionResult:
        """Decode one utterance a live stream's VAD has already cut (16 kHz mono float32).

        No VAD pass, and ahead of uploads in the queue, so captions stay live. Not cached:
        live audio does not repeat byte for byte.
        """
        check_options(options)
        started = time.perf_counter()
        result = await self._run(samples, options, use_vad=False, priority=Priority.STREAM)
        return replace(result, processing_ms=(time.perf_counter() - started) * 1000)

    async def _run(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        *,
        progress: Progress | None = None,
        use_vad: bool = True,
        priority: Priority = Priority.UPLOAD,
    ) -> TranscriptionResult:
        future = self.engine.submit(
            samples, options, use_vad=use_vad, priority=priority, progress=progress
        )
        result = await asyncio.wrap_future(future)
        self.metrics.inferences.inc()
        return TranscriptionResult(
            transcript=to_transcript(result, audio.duration_s(samples)),
            processing_ms=0.0,
            inference_ms=result.inference_s * 1000,
            queue_wait_ms=result.queue_wait_s * 1000,
            from_cache=False,
            model=self.settings.served_model_name,
        )

    def _key(self, kind: str, content: bytes, options: DecodeOptions) -> str:
        if not self.engine.ready:  # no fingerprint before the model is loaded
            raise NotReady("The model is not loaded yet (or the server is shutting down).")
        return cache_key(
            kind,
            sha256_hex(content),
            language=options.language,
            use_itn=options.use_itn,
            fingerprint=self.engine.fingerprint,
        )

    def _result(
        self, value: dict[str, Any], started: float, from_cache: bool
    ) -> TranscriptionResult:
        return TranscriptionResult(
            transcript=Transcript.from_dict(value["transcript"]),
            processing_ms=(time.perf_counter() - started) * 1000,
            inference_ms=value["inference_ms"],
            queue_wait_ms=0.0 if from_cache else value["queue_wait_ms"],
            from_cache=from_cache,
            model=self.settings.served_model_name,
        )

    def close(self) -> None:
        self.cache.close()


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
