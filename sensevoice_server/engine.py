"""The one model: loaded once, warmed up, and touched by exactly one worker thread.

funasr's `AutoModel.generate` is not thread-safe (two threads crashed the process with heap
corruption), so every caller submits a job to a bounded priority queue and waits on a
future; the worker thread is the only code that ever calls into the model (DESIGN.md,
invariants 1 and 2). Live-stream segments outrank file uploads so captions stay live.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from sensevoice_server.errors import Busy, ModelLoadError, NotReady
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called from the worker thread with (segments decoded, segments in total)."""


class Priority(enum.IntEnum):
    STREAM = 0
    UPLOAD = 1
    STOP = 9  # after everything already queued: shutting down drains the queue


@dataclass(frozen=True)
class RawSegment:
    start_ms: int
    end_ms: int
    text: str  # SenseVoice's tagged text for this segment


@dataclass(frozen=True)
class EngineResult:
    text: str  # exactly what generate() returned: the segments' texts joined by a space
    segments: list[RawSegment]
    inference_s: float
    queue_wait_s: float = 0.0


@dataclass
class _Job:
    audio: np.ndarray
    options: DecodeOptions
    use_vad: bool
    progress: Progress | None
    future: Future[EngineResult] = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class _Trace:
    """What one generate() call computed on the way: its VAD segments and per-segment texts.

    `between_batches` runs before each batch of segments after the first: the engine uses
    it to serve live-stream jobs that arrived meanwhile.
    """

    progress: Progress | None
    between_batches: Callable[[], None] | None = None
    vad: list[dict[str, Any]] | None = None
    asr: list[dict[str, Any]] = field(default_factory=list)


def _auto_model_class() -> type:
    """Subclass AutoModel to record what generate() computes and then drops.

    Gap filled: with a VAD model, funasr's generate() decodes each VAD segment separately
    but returns only the texts joined into one string, without the segments' times. Both
    pass through `inference()`, so we keep them as they go by rather than run VAD twice.
    """
    from funasr import AutoModel

    class TracingAutoModel(AutoModel):  # type: ignore[misc, valid-type]
        trace: _Trace | None = None

        def inference(self, input, input_len=None, model=None, kwargs=None, **cfg):
            trace = self.trace
            vad = model is not None and model is self.vad_model
            if trace is not None and not vad and trace.asr and trace.between_batches:
                trace.between_batches()
            results = super().inference(input, input_len, model=model, kwargs=kwargs, **cfg)
            if trace is None:
                return results
            if vad:
                trace.vad = results
            else:
                trace.asr.extend(results)
                if trace.progress and trace.vad:
                    trace.progress(len(trace.asr), len(trace.vad[0]["value"]))
            return results

    return TracingAutoModel


def load_model(settings: Settings, device: str) -> Any:
    """Build the AutoModel the reference pipeline builds (DESIGN.md, "Reference behaviour")."""
    try:
        return _auto_model_class()(
            model=settings.model,
            vad_model=settings.vad_model,
            vad_kwargs={"max_single_segment_time": settings.max_single_segment_ms},
            merge_vad=True,
            merge_length_s=settings.merge_length_s,
            # The real config has no dither key, and the frontend then dithers with 1.0:
            # identical audio would give different text from call to call.
            frontend_conf={"dither": 0.0},
            device=device,
            ncpu=settings.ncpu,
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
        )
    except Exception as error:
        raise ModelLoadError(_load_failure_message(settings, error)) from error


def _load_failure_message(settings: Settings, error: Exception) -> str:
    remote = [
        name
        for name in (settings.model, settings.vad_model)
        if not Path(name).is_dir() and name != "silero-vad"
    ]
    if not remote:
        return f"Could not load the model from local directories: {error}"
    # funasr reports an unreachable hub as "model ... is not registered" followed by every
    # import error it met: true but misleading, so it goes to the debug log only.
    log.debug("funasr's own error: %s", error)
    return (
        f"Could not get {' and '.join(remote)} from the model hub (ModelScope): it is not "
        "reachable from here, or the name is wrong. Without internet access, download the "
        "models once on another machine and point at the local directories: "
        "--model /path/to/SenseVoiceSmall --vad-model /path/to/fsmn-vad (or SENSEVOICE_MODEL "
        "and SENSEVOICE_VAD_MODEL); --vad-model silero-vad needs no download."
    )


class Engine:
    """Owns the model and the single worker thread that calls it."""

    def __init__(self, settings: Settings, on_fatal: Callable[[Exception], None] | None = None):
        self._settings = settings
        self._on_fatal = on_fatal
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._pending = 0
        self._accepting = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sensevoice-engine", daemon=True)
        self._model: Any = None
        self.device = settings.resolved_device()
        self.fingerprint = ""
        self.load_count = 0
        self.failure: Exception | None = None

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Load and warm up the model in the worker thread; `ready` turns true after."""
        self._thread.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._accepting

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def queue_depth(self) -> int:
        """Jobs submitted and not yet finished (the one running included)."""
        return self._pending

    def stop_accepting(self) -> None:
        """Refuse new work (and report not ready) while what is queued still runs."""
        self._accepting = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._pending

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued (within `timeout`), end the worker."""
        self._accepting = False
        if self._thread.is_alive():
            self._queue.put((Priority.STOP, next(self._sequence), None))
            self._thread.join(timeout)

    # --- submitting work ----------------------------------------------------------------
    def submit(
        self,
        audio: np.ndarray,
        options: DecodeOptions,
        *,
        use_vad: bool = True,
        priority: Priority = Priority.UPLOAD,
        progress: Progress | None = None,
        admitted: bool = False,
    ) -> Future[EngineResult]:
        """Queue a decode; the future resolves in the worker thread.

        `use_vad=False` decodes the array as one utterance (live-stream segments, which
        the stream's own VAD has already cut).
        """
        # `admitted` work was accepted before a drain began: it still runs (once loaded).
        if not (self.ready or (admitted and self._ready.is_set() and self._thread.is_alive())):
            raise NotReady("The model is not loaded yet (or the server is shutting down).")
        job = _Job(audio, options, use_vad, progress)
        with self._lock:
            # Uploads are admitted (and bounded) before they get here (admission.py); this
            # bound also leaves room for two decodes per live stream.
            if self._pending >= self._settings.queue_size + 2 * self._settings.live_max_sessions:
                raise Busy(
                    f"The server is busy: {self._pending} transcriptions are queued. "
                    "Try again shortly.",
                    retry_after=max(1, self._pending),
                )
            self._pending += 1
        self._queue.put((priority, next(self._sequence), job))
        return job.future

    # --- the worker thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._load()
        except Exception as error:
            log.error("model load failed: %s", error)
            self.failure = error
            if self._on_fatal:
                self._on_fatal(error)
            return
        self._ready.set()
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            self._execute(job)

    def _execute(self, job: _Job) -> None:
        try:
            if job.future.set_running_or_notify_cancel():
                try:
                    waited = time.perf_counter() - job.submitted
                    job.future.set_result(replace(self._decode(job), queue_wait_s=waited))
                except BaseException as error:  # the caller gets it; the worker lives on
                    job.future.set_exception(error)
        finally:
            with self._lock:
                self._pending -= 1

    def _load(self) -> None:
        started = time.perf_counter()
        log.info(
            "loading model=%s vad=%s device=%s ncpu=%d",
            self._settings.model,
            self._settings.vad_model,
            self.device,
            self._settings.ncpu,
        )
        self._model = load_model(self._settings, self.device)
        self.load_count += 1
        self.fingerprint = self._fingerprint()
        self._warm_up()
        log.info(
            "model ready in %.1f s, fingerprint %s", time.perf_counter() - started, self.fingerprint
        )

    def _warm_up(self) -> None:
        """Run both paths once so the first user request pays no first-call costs."""
        noise = np.random.default_rng(0).normal(0, 0.05, 16_000).astype(np.float32)
        self._decode(_Job(noise, DecodeOptions(), use_vad=True, progress=None))
        self._decode(_Job(noise, DecodeOptions(), use_vad=False, progress=None))

    def _decode(self, job: _Job) -> EngineResult:
        model = self._model
        started = time.perf_counter()
        if not job.use_vad:
            out = model.inference(
                job.audio, language=job.options.language, use_itn=job.options.use_itn
            )
            text = out[0]["text"] if out else ""
            segments = [RawSegment(0, int(len(job.audio) / 16), text)] if text else []
            return EngineResult(text, segments, time.perf_counter() - started)
        trace = model.trace = _Trace(job.progress, between_batches=self._serve_stream_jobs)
        try:
            out = model.generate(
                input=job.audio,
                language=job.options.language,
                use_itn=job.options.use_itn,
                batch_size_s=self._settings.batch_size_s,
                merge_vad=True,  # read from generate() only (FACTS.md)
            )
        finally:
            model.trace = None
        text = out[0]["text"] if out else ""
        segments = _segments(trace, text, len(job.audio))
        return EngineResult(text, segments, time.perf_counter() - started)

    def _serve_stream_jobs(self) -> None:
        """Run live-stream jobs now, between two batches of a long upload.

        Stream jobs outrank uploads in the queue, but an upload already running is one
        generate() call; without this, captions would wait for the whole file. Safe for the
        upload: each inference call resets funasr's per-call settings and the upload's own
        batches keep the settings dict generate() gave them.
        """
        while (job := self._pop_stream_job()) is not None:
            trace, self._model.trace = self._model.trace, None
            try:
                self._execute(job)
            finally:
                self._model.trace = trace

    def _pop_stream_job(self) -> _Job | None:
        with self._queue.mutex:  # peek at the heap's head without taking it
            head = self._queue.queue[0] if self._queue.queue else None
        if head is None or head[0] != Priority.STREAM:
            return None
        _, _, job = self._queue.get_nowait()  # only this thread takes from the queue
        return job

    def _fingerprint(self) -> str:
        """What identifies the weights and every setting that changes the output."""
        model = self._model
        identity = {
            "model": _identify(model.kwargs.get("model_path") or self._settings.model),
            "vad": _identify(model.vad_kwargs.get("model_path") or self._settings.vad_model),
            "max_single_segment_ms": self._settings.max_single_segment_ms,
            "merge_length_s": self._settings.merge_length_s,
            "batch_size_s": self._settings.batch_size_s,
            "dither": 0.0,
            "funasr": version("funasr"),
        }
        blob = json.dumps(identity, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _segments(trace: _Trace, text: str, n_samples: int) -> list[RawSegment]:
    """Put the traced per-segment texts back in time order, next to their VAD times.

    generate() decodes segments shortest first (a stable sort by length) and joins the
    texts in time order with a space; we undo the sort the same way and check the result
    against the joined text, so a funasr change can never give us misplaced segments.
    """
    if not text:
        return []
    bounds = trace.vad[0]["value"] if trace.vad else []
    if len(bounds) == len(trace.asr):
        by_length = sorted(range(len(bounds)), key=lambda i: bounds[i][1] - bounds[i][0])
        texts = [""] * len(bounds)
        for result, index in zip(trace.asr, by_length, strict=True):
            texts[index] = result["text"]
        if " ".join(texts) == text:
            return [
                RawSegment(int(start), int(end), seg_text)
                for (start, end), seg_text in zip(bounds, texts, strict=True)
            ]
    log.warning("could not match VAD segments to the text; returning one segment")
    return [RawSegment(0, int(n_samples / 16), text)]


def _identify(path_or_name: str) -> str:
    """A content hash for a local model directory, the name itself for anything else."""
    path = Path(path_or_name)
    if not path.is_dir():
        return path_or_name
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.name.startswith(".") or "__pycache__" in file.parts:
            continue
        digest.update(os.fsencode(file.relative_to(path)))
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
