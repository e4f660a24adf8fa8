"""The engine's two threads, each the only one to touch its models (docs/ARCHITECTURE.md,
invariants 1 and 2): "sensevoice-vad" loads the VAD (and CAM++) and cuts jobs into segments,
"sensevoice-engine" loads the backend and decodes the batcher's batches (with more threads
beside it, "sensevoice-engine-2"..., where the backend takes concurrent calls: onnxruntime).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from sensevoice_server.engine.backends import Backend
from sensevoice_server.engine.batcher import Batcher
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.decoder import Decoder
from sensevoice_server.engine.fingerprint import fingerprint, identify
from sensevoice_server.engine.jobs import EmbedJob, Job
from sensevoice_server.engine.loading import load_backend
from sensevoice_server.engine.memory import give_back_freed_memory
from sensevoice_server.engine.segmenter import Segmenter, runs_in_torch
from sensevoice_server.engine.vad import Stopped

log = logging.getLogger(__name__)
WARM_UP = np.random.default_rng(0).normal(0, 0.05, 16_000).astype(np.float32)


class Workers:
    def __init__(
        self, settings: EngineSettings, backend: tuple[str, str], batcher: Batcher,
        on_fatal: Callable[[Exception], None] | None,
    ) -> None:  # fmt: skip
        self._settings = settings
        self.device = settings.device
        self.backend_name, self.precision = backend
        self.batcher = batcher
        self._on_fatal = on_fatal
        self.vad_jobs = VadQueue()
        self.loaded = {"vad": threading.Event(), "model": threading.Event()}
        self.threads = [
            threading.Thread(target=self._run_vad, name="sensevoice-vad", daemon=True),
            threading.Thread(target=self._run_model, name="sensevoice-engine", daemon=True),
        ]
        self.backend: Backend | None = None
        self.decoder: Decoder | None = None  # the model thread's, once the backend loaded
        self.segmenter: Segmenter | None = None  # the VAD thread's, once its models loaded
        self.segmenting: Job | None = None  # the job the VAD thread is working on
        self.holding: Job | EmbedJob | None = None  # the VAD thread's job, up to the next
        self.fingerprint = ""
        self.load_count = 0
        self.backend_load_s = 0.0  # the backend from its files (an export: no export time)
        self.failure: Exception | None = None

    # --- the VAD thread -----------------------------------------------------------------
    def _run_vad(self) -> None:
        if self._load("vad", self._load_vad):
            self._guarded("VAD", self._segment_jobs)

    def _segment_jobs(self) -> None:
        assert self.segmenter is not None
        while (job := self.vad_jobs.get()) is not None:
            self.holding = job
            if job.cancelled:
                continue
            if isinstance(job, EmbedJob):
                self._embed(job)
                continue
            self.segmenting = job
            try:
                items = self.segmenter.items(job, between=self._serve_embeds)
            except Stopped:  # cancelled part-way: nobody is waiting for it
                continue
            except Exception as error:  # the caller gets it; the thread lives on
                job.fail(error)
                continue
            finally:
                self.segmenting = None
            if items:
                self.batcher.put(items)
            else:
                job.finish()

    def _load_vad(self) -> None:
        if runs_in_torch(self._settings):
            # an import, not a look in sys.modules: the model's thread may be importing
            # torch this moment, and only an import waits for it to be whole
            import torch

            torch.set_num_threads(1)  # per thread; the model's thread has its own
        self.segmenter = Segmenter(self._settings, WARM_UP)

    def _serve_embeds(self) -> None:
        """Live utterances waiting for their speaker, served between an upload's chunks: an
        hour's VAD or speaker labels would otherwise hold their captions for seconds."""
        for job in self.vad_jobs.embeds():
            if not job.cancelled:
                self._embed(job)

    def _embed(self, job: EmbedJob) -> None:
        assert self.segmenter is not None and self.segmenter.speakers is not None
        try:
            job.future.set_result(self.segmenter.speakers.embedding(job.audio))
        except Exception as error:  # the caller gets it; the thread lives on
            job.future.set_exception(error)

    # --- the model's thread -------------------------------------------------------------
    def _run_model(self) -> None:
        if not self._load("model", self._load_model):
            return
        assert self.backend is not None and self.decoder is not None
        for number in range(2, self._settings.calls_at_once(self.backend.name) + 1):
            decoder = Decoder(self.backend, self._settings.keyword_boost)
            thread = threading.Thread(target=self._decode_batches, args=(decoder,),
                                      name=f"sensevoice-engine-{number}", daemon=True)  # fmt: skip
            self.threads.append(thread)
            thread.start()
        self._decode_batches(self.decoder)

    def _decode_batches(self, decoder: Decoder) -> None:
        """One model thread's loop; a backend that takes concurrent calls has several, each
        with a decoder of its own over the one model (config.py, `calls_at_once`)."""

        def loop() -> None:
            while (batch := self.batcher.next_batch()) is not None:
                decoder.decode(batch)  # a failing batch fails its jobs, the loop goes on

        self._guarded("model", loop)

    # --- both ---------------------------------------------------------------------------
    def _guarded(self, name: str, loop: Callable[[], None]) -> None:
        """Run a thread's loop to its end. A fault no job's own handling caught (a bug) ends
        the thread: then the job it held and every job waiting fail with that error, later
        ones are refused (`failure` makes the engine not ready), and the server is told to
        stop, so that a supervisor restarts it; without the thread they would wait for good."""
        try:
            loop()
        except Exception as error:
            log.exception("the %s thread failed; failing every waiting job", name)
            self.failure = error
            self.vad_jobs.fail_all(error)
            self.batcher.fail_all(error)
            if self.holding is not None:
                fail(self.holding, error)
            if self._on_fatal:
                self._on_fatal(error)

    def _load_model(self) -> None:
        started = time.perf_counter()
        settings = self._settings
        log.info("loading model=%s backend=%s precision=%s device=%s ncpu=%d", settings.model,
                 self.backend_name, self.precision, self.device, settings.ncpu)  # fmt: skip
        loading = time.perf_counter()
        self.backend = load_backend(settings, self.backend_name, self.precision)
        self.precision = self.backend.precision  # fp32 when int8 failed its check
        self.backend_name = self.backend.name  # auto on a CPU: measured (backend_choice.py)
        self.backend_load_s = time.perf_counter() - loading
        if not self.backend.batch_independent:
            self.batcher.max_items = 1  # its results would depend on the batch
        self.load_count += 1
        self.decoder = Decoder(self.backend, self._settings.keyword_boost)
        self.decoder.decode_now(WARM_UP)  # the first call pays one-time costs, not a user
        give_back_freed_memory()  # the model file's parse, freed but kept by the C heap
        self.loaded["vad"].wait()
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
            self.loaded[name].set()
            if self._on_fatal:
                self._on_fatal(error)
            return False
        self.loaded[name].set()
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


class VadQueue:
    """The VAD thread's work: live speaker embeddings ahead of uploads (a caption waits for
    its speaker), each kind in order, and the end (None) once everything queued is done.
    `embeds()` hands over the waiting embeddings alone, so the thread can serve them between
    the chunks of an upload it is working on."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._embeds: deque[EmbedJob] = deque()
        self._uploads: deque[Job] = deque()
        self._ended = False
        self._failure: Exception | None = None

    def put(self, job: Job | EmbedJob | None) -> None:
        with self._changed:
            if self._failure is not None and job is not None:
                fail(job, self._failure)
            elif job is None:
                self._ended = True
            elif isinstance(job, EmbedJob):
                self._embeds.append(job)
            else:
                self._uploads.append(job)
            self._changed.notify()

    def get(self) -> Job | EmbedJob | None:
        """The next job, waiting for one; None once ended and empty."""
        with self._changed:
            self._changed.wait_for(lambda: self._embeds or self._uploads or self._ended)
            if self._embeds:
                return self._embeds.popleft()
            return self._uploads.popleft() if self._uploads else None

    def embeds(self) -> list[EmbedJob]:
        """The embeddings waiting now, taken off the queue."""
        with self._changed:
            waiting, self._embeds = list(self._embeds), deque()
            return waiting

    def fail_all(self, error: Exception) -> None:
        """Fail what waits, and whatever comes later, with `error`; the queue has ended."""
        with self._changed:
            self._failure, self._ended = error, True
            waiting: list[Job | EmbedJob] = [*self._embeds, *self._uploads]
            for job in waiting:
                fail(job, error)
            self._embeds.clear()
            self._uploads.clear()
            self._changed.notify_all()


def fail(job: Job | EmbedJob, error: Exception) -> None:
    if isinstance(job, EmbedJob):
        if not job.future.done():
            job.future.set_exception(error)
    else:
        job.fail(error)
