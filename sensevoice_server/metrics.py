"""Prometheus metrics of one process, kept in the app's own registry.

A registry per app (not prometheus-client's global one) lets tests run several apps in one
process and read each one's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sensevoice_server.cache import ResultCache
from sensevoice_server.transcript import Transcript

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RTF_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sensevoice_requests", "HTTP requests by route and status.", ["route", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "sensevoice_request_latency_seconds", "HTTP request latency by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.audio_seconds = Counter(
            "sensevoice_audio_seconds", "Seconds of audio transcribed.", registry=r
        )
        self.real_time_factor = Histogram(
            "sensevoice_real_time_factor", "Processing time divided by audio duration.",
            buckets=RTF_BUCKETS, registry=r,
        )  # fmt: skip
        self.languages = Counter(
            "sensevoice_detected_language", "Segments by detected language.", ["language"],
            registry=r,
        )  # fmt: skip
        self.emotions = Counter(
            "sensevoice_emotion", "Segments by detected emotion.", ["emotion"], registry=r
        )
        self.events = Counter(
            "sensevoice_event", "Segments by detected audio event.", ["event"], registry=r
        )
        self.inferences = Counter(
            "sensevoice_model_inferences", "Jobs the model ran (cache hits run none).", registry=r
        )
        self.queue_depth = Gauge(
            "sensevoice_queue_depth", "Jobs waiting for or running on the model.", registry=r
        )
        self.model_loaded = Gauge(
            "sensevoice_model_loaded", "1 once the model is loaded and warmed up.", registry=r
        )

    def watch_engine(self, queue_depth: Callable[[], float], loaded: Callable[[], float]) -> None:
        self.queue_depth.set_function(queue_depth)
        self.model_loaded.set_function(loaded)

    def watch_cache(self, cache: ResultCache) -> None:
        self.registry.register(_CacheCollector(cache))

    def observe_transcript(self, transcript: Transcript, processing_s: float) -> None:
        self.audio_seconds.inc(transcript.duration)
        if transcript.duration > 0:
            self.real_time_factor.observe(processing_s / transcript.duration)
        for segment in transcript.segments:
            self.languages.labels(segment.language or "unknown").inc()
            self.emotions.labels(segment.emotion or "unknown").inc()
            for event in segment.events:
                self.events.labels(event).inc()


class _CacheCollector(Collector):
    """Exports the cache's own counters at scrape time (it keeps plain ints, not metrics)."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, doc in (
            ("hits", "Requests answered from the result cache."),
            ("misses", "Requests the result cache could not answer."),
            ("errors", "Result-cache failures served as misses (store down, corrupt entry)."),
            ("coalesced", "Requests that waited for an identical one instead of computing."),
        ):
            family = CounterMetricFamily(f"sensevoice_cache_{name}", doc)
            family.add_metric([], getattr(self.cache, name))
            yield family
