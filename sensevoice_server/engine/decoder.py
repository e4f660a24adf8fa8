"""What the model's thread does with a batch: features, the backend's logits, greedy text,
and word times when a job asks for them (funasr's forced alignment on the same logits).

Only the engine's model thread calls it (docs/ARCHITECTURE.md, invariant 2): the backend is not
thread-safe, and this object is how that thread reaches it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sensevoice_server.engine.alignment import AlignedWord, align, words
from sensevoice_server.engine.backends import Backend, Item
from sensevoice_server.engine.features import features
from sensevoice_server.engine.jobs import DecodedSegment, Job, Priority, WorkItem
from sensevoice_server.engine.tokens import greedy
from sensevoice_server.options import DecodeOptions

log = logging.getLogger(__name__)


class Decoder:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.largest_batch = 0  # the most segments one model call has held

    def decode(self, batch: list[WorkItem]) -> None:
        """Decode `batch` and hand each segment to its job, with its share of the time."""
        started = time.perf_counter()
        self.largest_batch = max(self.largest_batch, len(batch))
        try:
            segments = self.segments(batch)
        except Exception as error:
            log.exception("decoding a batch of %d failed", len(batch))
            for item in batch:
                item.job.fail(error)
            return
        elapsed = time.perf_counter() - started
        total = sum(item.seconds for item in batch) or 1.0
        for item, segment in zip(batch, segments, strict=True):
            item.job.record(item.index, segment, elapsed * item.seconds / total, started)

    def segments(self, batch: list[WorkItem]) -> list[DecodedSegment]:
        backend = self.backend
        items = [
            Item(features(item.samples, backend.cmvn), item.job.options.language,
                 item.job.options.use_itn)
            for item in batch
        ]  # fmt: skip
        decoded = []
        for item, logits in zip(batch, backend.logits(items), strict=True):
            options = item.job.options
            wanted = options.logprobs or options.word_timestamps  # words carry probabilities
            text, tokens = greedy(logits, backend.vocabulary, logprobs=wanted)
            aligned: tuple[AlignedWord, ...] = ()
            if options.word_timestamps:
                aligned = tuple(
                    shifted(w, item.start_ms) for w in words(align(logits, tuple(tokens)))
                )
            segment = DecodedSegment(
                item.start_ms, item.end_ms, text, tuple(tokens), aligned, item.speaker
            )
            decoded.append(segment)
        return decoded

    def decode_now(self, audio: np.ndarray) -> DecodedSegment:
        """Decode outside the queue, in the calling (model) thread: the warm-up only."""
        job = Job(audio, DecodeOptions(), Priority.UPLOAD, use_vad=False)
        return self.segments(job.whole())[0]


def shifted(word: AlignedWord, offset_ms: int) -> AlignedWord:
    return AlignedWord(
        word.text, word.start_ms + offset_ms, word.end_ms + offset_ms, word.probability
    )
