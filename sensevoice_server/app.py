"""The composition root: settings -> cache -> engine -> transcriber -> live sessions -> front ends.

`create_app(settings)` builds everything a process serves, in this one function, so tests
build apps with their own settings instead of patching globals; `main.py` calls it once.
Nothing else builds its own resources from settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import gradio as gr
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from gradio.utils import get_upload_folder

from sensevoice_server.api import cache as cache_routes
from sensevoice_server.api import (
    docs,
    errors,
    health,
    login,
    native,
    openai,
    realtime,
    schemas,
    stream,
)
from sensevoice_server.api import metrics as metrics_routes
from sensevoice_server.api.admission import RefuseWhenFull
from sensevoice_server.api.credentials import Credentials, describe_access
from sensevoice_server.api.deps import Services, provide
from sensevoice_server.api.gradio_guard import GradioInputGuard
from sensevoice_server.api.gradio_uploads import GradioUploads
from sensevoice_server.api.limits import MULTIPART_SLACK, BodyLimit
from sensevoice_server.api.login import UiLoginRequired
from sensevoice_server.api.middleware import RefuseOtherMethods, RequestLog
from sensevoice_server.audio import too_large
from sensevoice_server.core import build_transcriber
from sensevoice_server.errors import TooLarge
from sensevoice_server.live import LiveSessions
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import Transcriber
from sensevoice_server.ui import SAMPLES_DIR, build_ui
from sensevoice_server.ui.uploads import delete_cache

log = logging.getLogger(__name__)

TRANSCRIPTION_PATHS = ("/api/transcribe", "/api/batch", "/v1/audio/transcriptions")
OPEN_PATHS = ("/health", "/ready", "/metrics", "/cache/stats", "/login", "/logout",
              "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")  # fmt: skip


def create_app(
    settings: Settings | None = None,
    *,
    on_fatal: Callable[[Exception], None] | None = None,
    transcriber: Transcriber | None = None,
) -> FastAPI:
    """The app over `transcriber` (built here when not given; the server's is already
    loading its models, main.py)."""
    settings = settings or Settings()
    transcriber = transcriber or build_transcriber(settings, on_fatal=on_fatal)
    metrics = transcriber.metrics
    live_sessions = LiveSessions(settings, transcriber, metrics.registry)
    credentials = Credentials(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        transcriber.start()  # loads in the engine's threads: /health answers meanwhile
        yield
        transcriber.close(timeout=60)

    app = FastAPI(
        title="SenseVoice speech recognition",
        summary="SenseVoiceSmall transcription with language, emotion and audio-event tags.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    provide(app, Services(settings, transcriber, live_sessions, credentials, metrics))
    errors.install(app)
    schemas.serve_openapi(app, settings, [native.describe_forms, openai.describe_form])
    routers = [health.router, metrics_routes.router, native.router, openai.router,
               cache_routes.router, stream.router, realtime.router, login.router,
               docs.router]  # fmt: skip
    for router in routers:
        app.include_router(router)
    own_paths = {route.path for router in routers for route in router.routes
                 if isinstance(route, APIRoute | APIWebSocketRoute)}  # fmt: skip

    blocks = build_ui(transcriber, live_sessions, settings)  # queued as the settings say
    gr.mount_gradio_app(  # mounts onto `app` itself
        app, blocks, path="/", max_file_size=settings.max_upload_bytes,
        allowed_paths=[str(SAMPLES_DIR)],
    )  # fmt: skip
    # Gradio checks that file inputs were uploaded only once `has_launched` is true, which
    # launch() sets and mount_gradio_app() does not (processing_utils._check_allowed).
    blocks.has_launched = True

    # Outermost last: log -> body limit -> login -> admission -> Gradio uploads -> Gradio
    # guard -> 405s -> app
    app.add_middleware(RefuseOtherMethods, allowed=allowed_methods(routers))
    app.add_middleware(GradioInputGuard)
    app.add_middleware(GradioUploads, blocks=blocks, folder=Path(get_upload_folder()),
                       max_folder_bytes=int(settings.ui_upload_max_mb * 1_000_000),
                       max_file_bytes=settings.max_upload_bytes,
                       retry_after_s=delete_cache(settings.ui_upload_ttl_s)[0])  # fmt: skip
    app.add_middleware(RefuseWhenFull, check=transcriber.refusal, paths=TRANSCRIPTION_PATHS,
                       hold_bytes=transcriber.admission.hold_bytes)  # fmt: skip
    app.add_middleware(
        UiLoginRequired, credentials=credentials, own_paths=own_paths | set(OPEN_PATHS),
        own_prefixes=("/api/", "/v1/", "/cache", "/ws/"),
    )  # fmt: skip
    app.add_middleware(BodyLimit, limit_for=body_limits(settings))
    app.add_middleware(RequestLog, metrics=metrics, api_paths=own_paths)
    log_limits(settings, credentials)
    return app


def body_limits(settings: Settings) -> Callable[[str], tuple[int, TooLarge]]:
    """Batch requests may carry several files; every other body one file and its fields."""
    upload = settings.max_upload_bytes + MULTIPART_SLACK
    upload_refusal = too_large(settings.max_upload_bytes)
    batch = settings.max_batch_bytes + MULTIPART_SLACK
    batch_refusal = TooLarge(
        f"The request is larger than the batch limit of {settings.max_batch_mb:g} MB."
    )

    def limit_for(path: str) -> tuple[int, TooLarge]:
        return (batch, batch_refusal) if path == "/api/batch" else (upload, upload_refusal)

    return limit_for


def allowed_methods(routers: list[APIRouter]) -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                allowed.setdefault(route.path, set()).update(route.methods or ())
    for methods in allowed.values():
        if "GET" in methods:
            methods.add("HEAD")
    return allowed


def log_limits(settings: Settings, credentials: Credentials) -> None:
    log.info(
        "limits: upload %g MB (batch %g MB, %g MB in flight), audio %g s, queue %d jobs / "
        "%g s of audio, %d decodes at once, %d live sessions, drain %g s",
        settings.max_upload_mb, settings.max_batch_mb, settings.max_inflight_upload_mb,
        settings.max_duration_s,
        settings.queue_size, settings.queue_max_audio_s, settings.decode_concurrency,
        settings.live_max_sessions, settings.drain_timeout_s,
    )  # fmt: skip
    log.info(describe_access(credentials))


API_DESCRIPTION = """
Speech to text with SenseVoiceSmall: Chinese, English, Cantonese, Japanese and Korean, with
the speaker's emotion and audio events (music, laughter, applause...) kept in every answer.

* `POST /api/transcribe`: one file to structured JSON; `POST /api/batch`: several files.
* `POST /v1/audio/transcriptions`: OpenAI-compatible; point the OpenAI SDK's `base_url` here.
* Errors always have OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`;
  429 and 503 answers carry `Retry-After`.
* When API keys are configured, `/api`, `/v1` and the WebSocket need `Authorization: Bearer
  <key>`.
"""
