"""The Engine: models loaded once, each touched by one thread, every request through one batcher.

funasr models are not thread-safe (two threads in one AutoModel crashed the process), so
each model has exactly one thread: "sensevoice-vad" runs the VAD stage over uploads, and
"sensevoice-engine" runs the backend over batches from the batcher (DESIGN.md, invariants
1 and 2). Callers submit a job and wait on its future; a full queue says Busy (429).
Stopping drains: what is queued is finished first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from importlib.metadata import version

import numpy as np

from sensevoice_server.engine.backends import Backend
from sensevoice_server.engine.batcher import Batcher
from sensevoice_server.engine.decoder import Decoder
from sensevoice_server.engine.fingerprint import fingerprint, identify
from sensevoice_server.engine.jobs import (
    EngineResult,
    Job,
    Priority,
    Progress,
    SegmentSink,
)
from sensevoice_server.engine.loading import choose_backend, load_backend
from sensevoice_server.engine.segmenter import Segmenter
from sensevoice_server.errors import Busy, NotReady
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings

log = logging.getLogger(__name__)
WARM_UP = np.random.default_rng(0).normal(0, 0.05, 16_000).astype(np.float32)


class Engine:
    def __init__(self, settings: Settings, on_fatal: Callable[[Exception], None] | None = None):
        self._settings = settings
        self._on_fatal = on_fatal
        self.device = settings.resolved_device()
        self.backend_name, self.precision = choose_backend(settings, self.device)
        cuda = self.device.startswith("cuda")
        self._batcher = Batcher(
            max_items=settings.batch_max_items or (16 if cuda else 1),
            max_seconds=settings.batch_size_s,
            wait_s=settings.batch_wait_ms / 1000,
        )
        self._vad_jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._accepting = True
        self._loaded = {"vad": threading.Event(), "model": threading.Event()}
        self._threads = [
            threading.Thread(target=self._run_vad, name="sensevoice-vad", daemon=True),
            threading.Thread(target=self._run_model, name="sensevoice-engine", daemon=True),
        ]
        self.backend: Backend | None = None
        self.decoder: Decoder | None = None  # the model thread's, once the backend loaded
        self.segmenter: Segmenter | None = None  # the VAD thread's, once its models loaded
        self.fingerprint = ""
        self.load_count = 0
        self.backend_load_s = 0.0  # the backend from its files (an export: no export time)
        self.failure: Exception | None = None

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Load and warm up both models in their threads; `ready` turns true after."""
        for thread in self._threads:
            thread.start()

    @property
    def loaded(self) -> bool:
        return all(event.is_set() for event in self._loaded.values()) and not self.failure

    @property
    def ready(self) -> bool:
        return self.loaded and self._accepting

    def wait_ready(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self._loaded.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                return False
        return not self.failure

    @property
    def largest_batch(self) -> int:
        """The most segments one model call has held so far."""
        return self.decoder.largest_batch if self.decoder else 0

    @property
    def queue_depth(self) -> int:
        """Jobs submitted and not yet answered (the ones running included)."""
        return self._pending

    def info(self) -> dict[str, str]:
        return {"backend": self.backend_name, "precision": self.precision, "device": self.device}

    def stop_accepting(self) -> None:
        """Refuse new work (and report not ready) while what is queued still runs."""
        self._accepting = False

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._pending

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued (within `timeout`), end both threads."""
        self._accepting = False
        if not self._pending:
            # Nothing is awaited, but a cancelled job may still hold a thread in a call that
            # cannot be interrupted (funasr's VAD over an hour of audio): both threads are
            # daemons, so the process need not wait for work nobody wants.
            timeout = min(timeout, 1.0) if timeout is not None else 1.0
        vad, model = self._threads
        if vad.is_alive():
            self._vad_jobs.put(None)
            vad.join(timeout)
        self._batcher.close()
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
        progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
        admitted: bool = False,
    ) -> Future[EngineResult]:
        """Queue a job; its future resolves from the engine's thread. Cancel it to stop it.

        `use_vad=False` decodes the array as one segment (an utterance a live stream's VAD
        has already cut). `admitted` work was let in before a drain began, so it still runs.
        """
        if not (self.ready or (admitted and self.loaded and self._threads[1].is_alive())):
            raise NotReady("The model is not loaded yet (or the server is shutting down).")
        job = Job(audio, options, priority, use_vad, progress, on_segment)
        with self._lock:
            # Uploads are admitted (and bounded) before they get here (admission.py); this
            # bound also leaves room for two decodes per live stream.
            limit = self._settings.queue_size + 2 * self._settings.live_max_sessions
            if self._pending >= limit:
                raise Busy(
                    f"The server is busy: {self._pending} transcriptions are queued. "
                    "Try again shortly.",
                    retry_after=max(1, self._pending // 4),
                )
            self._pending += 1
        job.future.add_done_callback(self._answered)  # also when cancelled
        if use_vad:
            self._vad_jobs.put(job)
        else:
            self._batcher.put(job.whole())
        return job.future

    def _answered(self, _: Future[EngineResult]) -> None:
        with self._lock:
            self._pending -= 1

    # --- the VAD thread -----------------------------------------------------------------
    def _run_vad(self) -> None:
        import torch

        torch.set_num_threads(1)  # per thread; the model's thread has its own
        if not self._load("vad", self._load_vad):
            return
        assert self.segmenter is not None
        while (job := self._vad_jobs.get()) is not None:
            if job.cancelled:
                continue
            try:
                items = self.segmenter.items(job)
            except Exception as error:  # the caller gets it; the thread lives on
                job.fail(error)
                continue
            if items:
                self._batcher.put(items)
            else:
                job.finish()

    def _load_vad(self) -> None:
        self.segmenter = Segmenter(self._settings, self.device, WARM_UP)

    # --- the model's thread -------------------------------------------------------------
    def _run_model(self) -> None:
        if not self._load("model", self._load_model):
            return
        assert self.decoder is not None
        while (batch := self._batcher.next_batch()) is not None:
            self.decoder.decode(batch)

    def _load_model(self) -> None:
        started = time.perf_counter()
        settings = self._settings
        log.info("loading model=%s backend=%s precision=%s device=%s ncpu=%d", settings.model,
                 self.backend_name, self.precision, self.device, settings.ncpu)  # fmt: skip
        loading = time.perf_counter()
        self.backend = load_backend(settings, self.backend_name, self.precision, self.device)
        self.backend_load_s = time.perf_counter() - loading
        if not self.backend.batch_independent:
            self._batcher.max_items = 1  # its results would depend on the batch
        self.load_count += 1
        self.decoder = Decoder(self.backend)
        self.decoder.decode_now(WARM_UP)  # the first call pays one-time costs, not a user
        self._loaded["vad"].wait()
        self.fingerprint = fingerprint(self._identity())
        log.info("model ready in %.1f s (%s %s on %s), fingerprint %s",
                 time.perf_counter() - started, self.backend_name, self.precision,
                 self.device, self.fingerprint)  # fmt: skip

    def _load(self, name: str, load: Callable[[], None]) -> bool:
        try:
            load()
        except Exception as error:
            log.error("%s load failed: %s", name, error)
            self.failure = error
            self._loaded[name].set()
            if self._on_fatal:
                self._on_fatal(error)
            return False
        self._loaded[name].set()
        return True

    def _identity(self) -> dict[str, object]:
        """What identifies the weights and every setting that changes the output."""
        assert self.backend is not None and self.segmenter is not None
        settings = self._settings
        return {
            "model": identify(str(getattr(self.backend, "model_dir", settings.model))),
            "max_single_segment_ms": settings.max_single_segment_ms,
            "merge_length_s": settings.merge_length_s,
            "funasr": version("funasr"),
            **self.segmenter.identity(),
            **self.backend.identity(),
        }
