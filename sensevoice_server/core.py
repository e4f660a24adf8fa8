"""The core every front end shares, built without any web framework: settings -> cache ->
engine -> admission -> Transcriber.

The web app (app.py) wraps it in FastAPI and Gradio; the batch CLI and the benchmarks run it
bare, so they import neither. Nothing else builds these resources from settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sensevoice_server.admission import Admission
from sensevoice_server.cache import ResultCache, open_cache
from sensevoice_server.engine import Engine, EngineSettings
from sensevoice_server.errors import StartupError
from sensevoice_server.metrics import Metrics
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import Transcriber

log = logging.getLogger(__name__)


def build_transcriber(
    settings: Settings, *, on_fatal: Callable[[Exception], None] | None = None
) -> Transcriber:
    """The core, not started: `start()` loads the models in their threads."""
    cache = build_cache(settings)
    # Uploads are bounded by admission before they reach the engine; its own bound leaves
    # room beside them for two decodes per live stream (an utterance and its successor).
    engine_settings = EngineSettings.of(
        settings, max_pending=settings.queue_size + 2 * settings.live_max_sessions
    )
    engine = Engine(engine_settings, on_fatal=on_fatal)
    admission = Admission(
        max_jobs=settings.queue_size,
        max_audio_s=settings.queue_max_audio_s,
        decode_concurrency=settings.decode_concurrency,
        max_upload_bytes=int(settings.max_inflight_upload_mb * 1_000_000),
    )
    return Transcriber(settings, engine, cache, Metrics(), admission)


def build_cache(settings: Settings) -> ResultCache:
    try:
        return open_cache(
            settings.cache_url,
            max_bytes=int(settings.cache_max_mb * 1_000_000),
            ttl_s=settings.cache_ttl_s,
        )
    except ValueError as error:
        raise StartupError(f"--cache-url (SENSEVOICE_CACHE_URL): {error}") from None
