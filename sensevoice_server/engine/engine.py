"""The Engine: models loaded once, each touched by one thread, every request through one batcher.

funasr models are not thread-safe (two threads in one AutoModel crashed the process), so
each model has exactly one thread (workers.py): "sensevoice-vad" runs the VAD stage over
uploads, and "sensevoice-engine" runs the backend over batches from the batcher, with a
second thread beside it when the backend takes concurrent calls (onnxruntime on a CPU)
(docs/ARCHITECTURE.md, invariants 1 and 2). The Engine is their front: callers submit a job
and wait on its future; a full queue says Busy (429). Stopping drains: what is queued is
finished first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from sensevoice_server.engine.batcher import Batcher
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.jobs import (
    EmbedJob,
    EngineResult,
    Job,
    Priority,
    SegmentProgress,
    SegmentSink,
)
from sensevoice_server.engine.loading import choose_backend, imports_ahead
from sensevoice_server.engine.workers import Workers
from sensevoice_server.errors import Busy, NotReady
from sensevoice_server.options import DecodeOptions


class Engine:
    def __init__(
        self, settings: EngineSettings, on_fatal: Callable[[Exception], None] | None = None
    ) -> None:
        self._settings = settings
        self.device = settings.device
        backend_name, precision = choose_backend(settings)
        cuda = self.device.startswith("cuda")
        self._batcher = Batcher(
            max_items=settings.batch_max_items or (16 if cuda else 1),
            max_seconds=settings.batch_size_s,
            wait_s=settings.batch_wait_ms / 1000,
        )
        self.workers = Workers(settings, (backend_name, precision), self._batcher,
                               on_fatal)  # fmt: skip
        self._lock = threading.Lock()
        self._pending = 0
        self._accepting = True
        self._started = False

    @property
    def backend_name(self) -> str:
        """As chosen, until the model is loaded; then as served (on a CPU, `auto` serves
        what a measurement on this machine chose, engine/backend_choice.py)."""
        return self.workers.backend_name

    @property
    def precision(self) -> str:
        """As chosen, until the model is loaded; then as served (the int8 check may have
        put fp32 in int8's place, engine/int8_check.py)."""
        return self.workers.precision

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint (cache keys carry it); empty until it is loaded."""
        return self.workers.fingerprint

    @property
    def failure(self) -> Exception | None:
        return self.workers.failure

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Load and warm up both models in their threads; `ready` turns true after. A second
        call does nothing (the app's lifespan, after main.py started it early)."""
        if self._started:
            return
        self._started = True
        for thread in self.workers.threads:
            thread.start()

    def start_early(self) -> bool:
        """Start loading now, while the caller goes on importing, if the loading imports no
        more than it can import here first (loading.py, `imports_ahead`); True if it started."""
        if not imports_ahead(self._settings):
            return False
        self.start()
        return True

    @property
    def loaded(self) -> bool:
        return all(event.is_set() for event in self.workers.loaded.values()) and not self.failure

    @property
    def ready(self) -> bool:
        return self.loaded and self._accepting

    def wait_ready(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.workers.loaded.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                return False
        return not self.failure

    @property
    def largest_batch(self) -> int:
        """The most segments one model call has held so far."""
        decoder = self.workers.decoder
        return decoder.largest_batch if decoder else 0

    @property
    def queue_depth(self) -> int:
        """Jobs submitted and not yet answered (the ones running included), and a cancelled
        job whose VAD work runs on to its next chunk (a busy VAD thread is work too)."""
        job = self.workers.segmenting
        return self._pending + int(job is not None and job.cancelled)

    def info(self) -> dict[str, str]:
        return {"backend": self.backend_name, "precision": self.precision, "device": self.device}

    def stop_accepting(self) -> None:
        """Refuse new work (and report not ready) while what is queued still runs."""
        self._accepting = False

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued (within `timeout`), end both threads."""
        self._accepting = False
        if not self._pending:
            # Nothing is awaited, but a cancelled job may still hold a thread until its VAD
            # reaches the next chunk, or in a model call: both threads are daemons, so the
            # process need not wait for work nobody wants.
            timeout = min(timeout, 1.0) if timeout is not None else 1.0
        vad, *models = self.workers.threads
        if vad.is_alive():
            self.workers.vad_jobs.put(None)
            vad.join(timeout)
        self._batcher.close()
        for model in models:
            if model.is_alive():
                model.join(timeout)

    # --- submitting work ----------------------------------------------------------------
    def submit(
        self,
        audio: np.ndarray,
        options: DecodeOptions,
        *,
        use_vad: bool = True,
        priority: Priority = Priority.UPLOAD,
        progress: SegmentProgress | None = None,
        on_segment: SegmentSink | None = None,
        admitted: bool = False,
    ) -> Future[EngineResult]:
        """Queue a job; its future resolves from the engine's thread. Cancel it to stop it.

        `use_vad=False` decodes the array as one segment (an utterance a live stream's VAD
        has already cut). `admitted` work was let in before a drain began, so it still runs.
        """
        if not (self.ready or (admitted and self.loaded and self.workers.threads[1].is_alive())):
            raise NotReady("The model is not loaded yet (or the server is shutting down).")
        job = Job(audio, options, priority, use_vad, progress, on_segment)
        with self._lock:
            # Uploads are admitted (and bounded) before they get here (admission.py); the
            # composition root sizes this bound to leave room for live streams' decodes too.
            if self._pending >= self._settings.max_pending:
                raise Busy(
                    f"The server is busy: {self._pending} transcriptions are queued. "
                    "Try again shortly.",
                    retry_after=max(1, self._pending // 4),
                )
            self._pending += 1
        job.future.add_done_callback(self._answered)  # also when cancelled
        if use_vad:
            self.workers.vad_jobs.put(job)
        else:
            self._batcher.put(job.whole())
        return job.future

    def embed(self, audio: np.ndarray) -> Future[np.ndarray | None]:
        """A live utterance's speaker embedding, from the VAD thread (speaker labels on)."""
        if not self._settings.speakers:
            raise RuntimeError("speaker labels are off")
        if not (self.loaded and self.workers.threads[0].is_alive()):
            raise NotReady("The model is not loaded yet (or the server is shutting down).")
        job = EmbedJob(audio)
        self.workers.vad_jobs.put(job)
        return job.future

    def _answered(self, _: Future[EngineResult]) -> None:
        with self._lock:
            self._pending -= 1
