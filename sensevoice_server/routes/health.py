"""Liveness and readiness: what Supervisor, nginx and load balancers poll.

`/health` answers from the event loop alone, so it stays fast while the model is busy;
`/ready` is 200 only once the model is loaded and warmed up and the process is not
shutting down.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sensevoice_server.streaming import live_sessions

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the process alive?")
async def health(request: Request) -> dict[str, str | int]:
    transcriber = request.app.state.transcriber
    return {
        "status": "ok",
        "queue_depth": transcriber.engine.queue_depth,
        "live_sessions": live_sessions(transcriber).count,
    }


@router.get(
    "/ready",
    summary="Is the model loaded and taking work?",
    responses={503: {"description": "Loading, failed, or shutting down"}},
)
async def ready(request: Request) -> JSONResponse:
    engine = request.app.state.transcriber.engine
    if engine.ready:
        return JSONResponse({"status": "ready", "model": engine.fingerprint})
    state = "failed" if engine.failure else "loading" if not engine.wait_ready(0) else "stopping"
    return JSONResponse({"status": state}, status_code=503)
