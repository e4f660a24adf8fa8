"""The application factory: one Engine, one Transcriber, every front end mounted on them.

`create_app(settings)` builds everything a process serves, so tests build apps with their
own settings instead of patching globals; `app_sensevoice.py` calls it once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import gradio as gr
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from sensevoice_server.api.gradio_guard import GradioInputGuard
from sensevoice_server.engine import Engine
from sensevoice_server.errors import Busy, ServiceError
from sensevoice_server.metrics import Metrics
from sensevoice_server.middleware import RefuseOtherMethods, RequestMetrics
from sensevoice_server.routes import cache, health, metrics, native, openai, stream
from sensevoice_server.routes.native import error_type
from sensevoice_server.service import Transcriber
from sensevoice_server.settings import Settings
from sensevoice_server.ui import SAMPLES_DIR, build_ui

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    on_fatal: Callable[[Exception], None] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    log.info(
        "limits: upload %g MB, audio %g s, queue %d, batch %d files, live sessions %d, drain %g s",
        settings.max_upload_mb, settings.max_duration_s, settings.queue_size,
        settings.max_batch_files, settings.live_max_sessions, settings.drain_timeout_s,
    )  # fmt: skip
    engine = Engine(settings, on_fatal=on_fatal)
    transcriber = Transcriber(settings, engine, Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()  # loads in the worker thread: /health answers meanwhile
        yield
        engine.close(timeout=60)
        transcriber.close()

    app = FastAPI(
        title="SenseVoice speech recognition",
        summary="SenseVoiceSmall transcription with language, emotion and audio-event tags.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.transcriber = transcriber
    app.add_exception_handler(ServiceError, service_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(HTTPException, http_error_response)
    routers = [module.router for module in (health, metrics, native, openai, cache, stream)]
    for router in routers:
        app.include_router(router)
    api_paths = {route.path for router in routers for route in router.routes}
    app.add_middleware(RefuseOtherMethods, allowed=allowed_methods(routers))
    app.add_middleware(RequestMetrics, metrics=transcriber.metrics, api_paths=api_paths)

    blocks = build_ui(transcriber).queue(
        default_concurrency_limit=settings.ui_concurrency, max_size=settings.ui_queue_size
    )
    app = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        max_file_size=settings.max_upload_bytes,
        allowed_paths=[str(SAMPLES_DIR)],
        auth=_ui_auth(settings),
    )
    # Gradio checks that file inputs were uploaded only once `has_launched` is true, which
    # launch() sets and mount_gradio_app() does not (processing_utils._check_allowed).
    blocks.has_launched = True
    app.add_middleware(GradioInputGuard)
    return app


API_DESCRIPTION = """
Speech to text with SenseVoiceSmall: Chinese, English, Cantonese, Japanese and Korean, with
the speaker's emotion and audio events (music, laughter, applause...) kept in every answer.

* `POST /api/transcribe`: one file to structured JSON; `POST /api/batch`: several files.
* `POST /v1/audio/transcriptions`: OpenAI-compatible; point the OpenAI SDK's `base_url` here.
* Errors always have OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
* When API keys are configured, `/api` and `/v1` need `Authorization: Bearer <key>`.
"""


def error_response(status: int, message: str, code: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    """OpenAI's error shape, for every route: one shape is easier on every client."""
    body = {"message": message, "type": error_type(status), "param": param, "code": code}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def service_error_response(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, Busy) else None
    if error.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(error.status, error.message, error.code, error.param, headers)


async def validation_error_response(request: Request, error: Exception) -> JSONResponse:
    """FastAPI says 422 with a list of dicts; a person wants 400 and a sentence."""
    assert isinstance(error, RequestValidationError)
    problems = []
    param = None
    for item in error.errors():
        field = str(item["loc"][-1]) if item.get("loc") else "request"
        param = param or field
        problems.append(f"{field}: {item['msg']}")
    return error_response(400, "Bad request. " + "; ".join(problems), "invalid_request", param)


async def http_error_response(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return error_response(error.status_code, str(error.detail), code, headers=error.headers)


def allowed_methods(routers: list[APIRouter]) -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                allowed.setdefault(route.path, set()).update(route.methods)
    for methods in allowed.values():
        if "GET" in methods:
            methods.add("HEAD")
    return allowed


def _ui_auth(settings: Settings) -> tuple[str, str] | None:
    if not settings.ui_auth:
        return None
    user, _, password = settings.ui_auth.partition(":")
    return (user, password)
