"""What the model's thread does with a batch: features, the backend's logits, the text
(greedy, or beam search with a boost when a job gives keywords), and word times when a job
asks for them (funasr's forced alignment on the same logits). A job that restricts detection
to some languages gets its segments decoded again where the model guessed another.

Only the engine's model thread calls it (docs/ARCHITECTURE.md, invariant 2): the backend is not
thread-safe, and this object is how that thread reaches it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sensevoice_server.engine.alignment import AlignedWord, align, words
from sensevoice_server.engine.backends import Backend, Item
from sensevoice_server.engine.beam_search import beam_search
from sensevoice_server.engine.features import features
from sensevoice_server.engine.jobs import DecodedSegment, Job, Priority, WorkItem
from sensevoice_server.engine.keyword_graph import DEFAULT_BOOST, KeywordGraph
from sensevoice_server.engine.language_set import outside
from sensevoice_server.engine.tokens import Token, greedy
from sensevoice_server.options import DecodeOptions

log = logging.getLogger(__name__)


class Decoder:
    def __init__(self, backend: Backend, keyword_boost: float = DEFAULT_BOOST) -> None:
        self.backend = backend
        self.keyword_boost = keyword_boost
        self.largest_batch = 0  # the most segments one model call has held
        self._graphs: dict[tuple[str, ...], KeywordGraph] = {}  # the latest keyword lists

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
        all_logits = self.within_languages(batch, items, backend.logits(items))
        decoded = []
        for item, logits in zip(batch, all_logits, strict=True):
            options = item.job.options
            text, tokens = self.text(logits, options.keywords,
                                     options.logprobs or options.word_timestamps)  # fmt: skip
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

    def within_languages(
        self, batch: list[WorkItem], items: list[Item], all_logits: list[np.ndarray]
    ) -> list[np.ndarray]:
        """The logits again, under the best allowed language, for segments whose detected
        language a job's `languages` leaves out (one more model call for those only)."""
        again: dict[int, Item] = {}
        for index, (item, logits) in enumerate(zip(batch, all_logits, strict=True)):
            options = item.job.options
            if options.languages and options.language == "auto":
                chosen = outside(logits, self.backend.vocabulary, options.languages)
                if chosen is not None:
                    again[index] = Item(items[index].features, chosen, options.use_itn)
        if not again:
            return all_logits
        redone = dict(zip(again, self.backend.logits(list(again.values())), strict=True))
        return [redone.get(index, logits) for index, logits in enumerate(all_logits)]

    def text(
        self, logits: np.ndarray, keywords: tuple[str, ...], logprobs: bool
    ) -> tuple[str, list[Token]]:
        graph = self.graph(keywords) if keywords else None
        if graph is None or not graph.keywords or not self.keyword_boost:
            return greedy(logits, self.backend.vocabulary, logprobs=logprobs)
        return beam_search(logits, self.backend.vocabulary, graph)

    def graph(self, keywords: tuple[str, ...]) -> KeywordGraph:
        """The keyword graph of a list, built once while the list keeps coming (a live
        stream or a batch sends the same list with every segment)."""
        graph = self._graphs.get(keywords)
        if graph is None:
            if len(self._graphs) >= 64:
                self._graphs.clear()
            graph = self._graphs[keywords] = KeywordGraph.build(
                keywords, self.backend.vocabulary, self.keyword_boost
            )
            if graph.keywords < len(keywords):  # said once per list, not per segment
                left_out = len(keywords) - graph.keywords
                log.info("%d of %d keywords cannot be spelled with this model's vocabulary "
                         "and are left out", left_out, len(keywords))  # fmt: skip
        return graph

    def decode_now(self, audio: np.ndarray) -> DecodedSegment:
        """Decode outside the queue, in the calling (model) thread: the warm-up only."""
        job = Job(audio, DecodeOptions(), Priority.UPLOAD, use_vad=False)
        return self.segments(job.whole())[0]


def shifted(word: AlignedWord, offset_ms: int) -> AlignedWord:
    return AlignedWord(
        word.text, word.start_ms + offset_ms, word.end_ms + offset_ms, word.probability
    )
