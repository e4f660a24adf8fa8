"""Liveness and readiness: what Supervisor, nginx and load balancers poll.

`/health` answers from the event loop alone, so it stays fast while the model is busy;
`/ready` is 200 only once the model is loaded and warmed up and the process is not
shutting down.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sensevoice_server.api.deps import LiveSessionsDep, TranscriberDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the process alive?")
async def health(transcriber: TranscriberDep, sessions: LiveSessionsDep) -> dict[str, str | int]:
    return {"status": "ok", "queue_depth": transcriber.queue_depth, "live_sessions": sessions.count}


@router.get(
    "/ready",
    summary="Is the model loaded and taking work?",
    responses={503: {"description": "Loading, failed, or shutting down"}},
)
async def ready(transcriber: TranscriberDep) -> JSONResponse:
    state = transcriber.readiness()
    status = 200 if state["status"] == "ready" else 503
    headers = {} if status == 200 else {"Retry-After": "5"}
    return JSONResponse(state, status_code=status, headers=headers)
