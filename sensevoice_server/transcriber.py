"""The Transcriber: the one path every front end takes from uploaded bytes to a transcript.

Front ends (the Gradio UI, the HTTP API, batch, live-stream finals) translate their own
protocol into a call here and the result back; none of them calls the model itself
(docs/ARCHITECTURE.md, "The one path"). The path of an upload: upload-bytes cache key -> admission
(a ticket, before any work) -> decode -> PCM cache key (identical concurrent requests
computed once) -> engine -> cache. Hashing and decoding run in worker threads, never on
the event loop, and read a spooled upload in chunks: its bytes are never held whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from anyio import to_thread

from sensevoice_server import audio
from sensevoice_server.admission import Admission, Ticket
from sensevoice_server.audio import Upload
from sensevoice_server.cache import ResultCache, cache_key, sha256_hex
from sensevoice_server.engine import DecodedSegment, Engine, EngineResult, Priority, SegmentProgress
from sensevoice_server.engine.alignment import AlignedWord
from sensevoice_server.errors import BadRequest, NotReady, ServiceError
from sensevoice_server.metrics import Metrics
from sensevoice_server.options import LANGUAGES, DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.transcript import Segment, TokenLogprob, Transcript, Word, parse_segment


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
        cache: ResultCache,
        metrics: Metrics,
        admission: Admission,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.metrics = metrics
        self.admission = admission
        self.limits = audio.AudioLimits(settings.max_upload_bytes, settings.max_duration_s)
        metrics.watch_engine(lambda: engine.queue_depth, lambda: float(engine.ready))
        metrics.watch_cache(cache)

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Load the models in the engine's threads (`ready` turns true after) and reach the
        cache once in the background; returns at once. The engine may be loading already
        (main.py starts it early where that is safe, `Engine.start_early`)."""
        self.engine.start()
        self.cache.check_soon(self.settings.cache_url)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the models are loaded: False on a load failure (`failure` says what)
        or when `timeout` passed first."""
        return self.engine.wait_ready(timeout)

    @property
    def failure(self) -> Exception | None:
        return self.engine.failure

    def stop_accepting(self) -> None:
        """The start of a drain: new uploads are refused (not ready) while everything
        admitted, live streams' finals included, still runs."""
        self.engine.stop_accepting()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no upload is admitted and the engine has nothing queued or running
        (the drain on SIGTERM); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self.queue_depth and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.queue_depth

    def close(self, timeout: float | None = 60) -> None:
        """Finish what is queued (within `timeout`), end the engine's threads, close the
        cache."""
        self.engine.close(timeout)
        self.cache.close()

    # --- state ----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.engine.ready

    def info(self) -> dict[str, str]:
        """Where the model runs: backend, precision, device."""
        return self.engine.info()

    @property
    def queue_depth(self) -> int:
        """Uploads admitted and not finished, plus live-stream decodes in the engine."""
        return max(self.engine.queue_depth, self.admission.jobs)

    def readiness(self) -> dict[str, Any]:
        engine = self.engine
        if engine.ready:
            return {"status": "ready", "model": engine.fingerprint, **engine.info()}
        state = (
            "failed" if engine.failure else "loading" if not engine.wait_ready(0) else "stopping"
        )
        return {"status": state}

    def refusal(self) -> ServiceError | None:
        """What a new upload would be told now without any work: not ready, or busy."""
        if not self.engine.ready:
            return not_ready()
        return self.admission.refusal()

    # --- uploads --------------------------------------------------------------------------
    async def lookup(self, data: Upload, options: DecodeOptions) -> TranscriptionResult | None:
        """A cached answer for these exact upload bytes, without decoding them; else None."""
        check_options(options)
        key = await self._key("bytes", data, options)
        return await self._lookup(key, time.perf_counter())

    async def transcribe(
        self,
        data: Upload,
        options: DecodeOptions,
        progress: SegmentProgress | None = None,
        *,
        looked_up: bool = False,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> TranscriptionResult:
        """Answer an upload from the cache, or decode it, run the model and cache the result.

        `looked_up=True` when the caller already tried `lookup()` (batch requests look up
        every file first). `on_segment` hears of each segment as it is decoded, in time
        order, from the engine's thread (not for a cached answer: it has them all at once).
        Raises a `ServiceError` for anything the caller did wrong or should retry;
        cancelling the call (a client that left) stops the decode and the model's work.
        """
        check_options(options)
        if not self.ready:  # loading, or draining: admitted work finishes, new work waits
            raise not_ready()
        started = time.perf_counter()
        bytes_key = await self._key("bytes", data, options)
        if not looked_up and (hit := await self._lookup(bytes_key, started)):
            return hit
        declared = await to_thread.run_sync(audio.declared_duration, data)
        async with self.admission.ticket(
            min(declared or 0.0, self.limits.max_duration_s)
        ) as ticket:
            samples = await decode_admitted(data, self.limits, self.admission, ticket)

            async def compute() -> dict[str, Any]:
                result = await self._run(samples, options, progress=progress, on_segment=on_segment)
                return {"transcript": result.transcript.to_dict(),
                        "inference_ms": result.inference_ms,
                        "queue_wait_ms": result.queue_wait_ms}  # fmt: skip

            # the samples' own buffer, hashed in a thread: no 230 MB copy on the event loop
            pcm_key = await self._key("pcm", memoryview(samples.data).cast("B"), options)
            value, from_cache = await self.cache.get_or_compute(pcm_key, compute)
        await self.cache.aset(bytes_key, value)
        result = stored_result(value, started, from_cache, self.settings.served_model_name)
        self.metrics.observe_transcript(result.transcript, result.processing_ms / 1000)
        return result

    # --- live streams ---------------------------------------------------------------------
    async def transcribe_utterance(
        self, samples: np.ndarray, options: DecodeOptions, *, partial: bool = False
    ) -> Transcript:
        """Decode one utterance a live stream's VAD has already cut (16 kHz mono float32).

        No VAD pass, and ahead of uploads in the queue, so captions stay live. Not cached:
        live audio does not repeat byte for byte.
        """
        check_options(options)
        priority = Priority.PARTIAL if partial else Priority.FINAL
        if partial:  # a preview: no word times
            options = replace(options, word_timestamps=False)
        result = await self._run(samples, options, use_vad=False, priority=priority)
        return result.transcript

    @property
    def labels_speakers(self) -> bool:
        return self.settings.speakers

    async def speaker_embedding(self, samples: np.ndarray) -> np.ndarray | None:
        """A live utterance's speaker embedding (speaker labels on): CAM++ on the VAD thread,
        while the model thread decodes its final."""
        future = self.engine.embed(samples)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    # --- shared ---------------------------------------------------------------------------
    async def _run(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        *,
        progress: SegmentProgress | None = None,
        on_segment: Callable[[Segment], None] | None = None,
        use_vad: bool = True,
        priority: Priority = Priority.UPLOAD,
    ) -> TranscriptionResult:
        duration = audio.duration_s(samples)

        def segment_decoded(decoded: DecodedSegment) -> None:
            if on_segment is not None:
                on_segment(to_segment(decoded, duration, options))

        future = self.engine.submit(
            samples, options, use_vad=use_vad, priority=priority, progress=progress,
            on_segment=segment_decoded if on_segment else None,
            # uploads were admitted; a live final belongs to a stream opened before any
            # drain, which must still get it (only partials, previews, stop at a drain)
            admitted=priority != Priority.PARTIAL,
        )  # fmt: skip
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # still queued: the worker skips it
            raise
        self.metrics.inferences.inc()
        return TranscriptionResult(
            transcript=to_transcript(result, audio.duration_s(samples), options),
            processing_ms=0.0,
            inference_ms=result.inference_s * 1000,
            queue_wait_ms=result.queue_wait_s * 1000,
            from_cache=False,
            model=self.settings.served_model_name,
        )

    async def _lookup(self, bytes_key: str, started: float) -> TranscriptionResult | None:
        cached = await self.cache.aget(bytes_key, count_miss=False)
        if cached is None:
            return None
        result = stored_result(cached, started, True, self.settings.served_model_name)
        self.metrics.observe_transcript(result.transcript, result.processing_ms / 1000)
        return result

    async def _key(self, kind: str, content: Upload | memoryview, options: DecodeOptions) -> str:
        if not self.engine.fingerprint:  # none before the model is loaded
            raise not_ready()
        digest = await to_thread.run_sync(content_sha256, content)  # 100 MB: 0.2 s, off the loop
        return cache_key(kind, digest, language=options.language, use_itn=options.use_itn,
                         fingerprint=self.engine.fingerprint, extras=options.extras())  # fmt: skip


async def decode_admitted(
    data: Upload, limits: audio.AudioLimits, admission: Admission, ticket: Ticket
) -> np.ndarray:
    """Decode in a worker thread, in one of the decode places (admission.py), the ticket
    growing with the audio found; a cancelled caller stops the decode."""
    cancelled = threading.Event()
    async with admission.decoding():
        try:
            return await to_thread.run_sync(
                lambda: audio.decode(data, limits, progress=ticket.grow_to, cancelled=cancelled)
            )
        except asyncio.CancelledError:
            cancelled.set()
            raise


def content_sha256(content: Upload | memoryview) -> str:
    """SHA-256 of the whole content; a file's is read in 256 KB chunks (hashlib.file_digest)
    from its start, and equals the hash of the same bytes (`sha256_hex`), so an upload's
    cache key does not depend on the way in (a spooled HTTP body or the UI's bytes)."""
    if isinstance(content, bytes | memoryview):
        return sha256_hex(content)
    content.seek(0)
    # typeshed's BinaryIO lacks the readinto() that spooled and real files have
    return hashlib.file_digest(content, "sha256").hexdigest()  # type: ignore[arg-type]


def stored_result(
    value: dict[str, Any], started: float, from_cache: bool, model: str
) -> TranscriptionResult:
    """A result from what the cache stores (a fresh result goes through it too)."""
    return TranscriptionResult(
        transcript=Transcript.from_dict(value["transcript"]),
        processing_ms=(time.perf_counter() - started) * 1000,
        inference_ms=value["inference_ms"],
        queue_wait_ms=0.0 if from_cache else value["queue_wait_ms"],
        from_cache=from_cache,
        model=model,
    )


def not_ready() -> NotReady:
    return NotReady("The model is not loaded yet (or the server is shutting down).")


def check_options(options: DecodeOptions) -> None:
    if options.language not in LANGUAGES:
        raise BadRequest(
            f"Unknown language {options.language!r:.40}; choose one of {', '.join(LANGUAGES)}.",
            param="language",
        )


def to_transcript(result: EngineResult, duration: float, options: DecodeOptions) -> Transcript:
    segments = [to_segment(decoded, duration, options) for decoded in result.segments]
    return Transcript(duration=round(duration, 3), segments=segments)


def to_segment(decoded: DecodedSegment, duration: float, options: DecodeOptions) -> Segment:
    start, end = decoded.start_ms / 1000, min(decoded.end_ms / 1000, duration)
    words = [timed_word(w, start, end) for w in decoded.words]
    logprobs = [
        TokenLogprob(token.piece, round(token.logprob, 4))
        for token in decoded.tokens
        if options.logprobs and not token.is_tag
    ]
    return parse_segment(decoded.text, start, end, words, logprobs, speaker=decoded.speaker)


def timed_word(word: AlignedWord, start: float, end: float) -> Word:
    """A word in seconds, kept inside its segment (CTC frames may overrun it by a few ms)."""
    word_start = min(max(word.start_ms / 1000, start), end)
    word_end = min(max(word.end_ms / 1000, word_start), end)
    return Word(word.text, round(word_start, 3), round(word_end, 3), round(word.probability, 4))
