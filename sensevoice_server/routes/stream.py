"""`WS /ws/transcribe`: live captions for a stream of raw PCM audio.

Client to server: first a JSON config, `{"language": "auto", "use_itn": true,
"sample_rate": 16000, "format": "pcm_s16le" | "f32le", "session_id": "optional"}`; then
binary frames of mono little-endian PCM, any size but whole samples; then `{"type": "end"}`.

Server to client, JSON text frames: `{"type": "ready", "session_id", "next_segment"}` once
the config is taken; `{"type": "partial", "segment", "start", "text"}` while an utterance
goes on; `{"type": "final", "segment", "start", "end", "text", "rich", "language", "emotion",
"events"}` when it closes; `{"type": "done"}` after the end, then a normal close (1000).
A problem gives `{"type": "error", "code", "reason"}` and a close whose code says what kind:
1003 unsupported data, 1008 policy (bad config, idle, too long), 1013 try again later
(session limit, busy), 1001 shutting down, 1011 internal error. Without a valid API key (when
keys are set) the upgrade itself is refused with HTTP 401.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from sensevoice_server.auth import bearer_token, valid_key
from sensevoice_server.engine import DecodeOptions
from sensevoice_server.service import Transcriber
from sensevoice_server.settings import Language, Settings
from sensevoice_server.streaming import (
    LiveSession,
    PolicyViolation,
    Slot,
    StreamError,
    TryAgainLater,
    UnsupportedData,
    live_sessions,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["streaming"])
T = TypeVar("T")

SAMPLE_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
SAMPLE_WIDTH = {"pcm_s16le": 2, "f32le": 4}


# --- messages -------------------------------------------------------------------------------
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


class StreamConfig(BaseModel):
    """The client's first message."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["config"] = "config"
    language: Language = "auto"
    use_itn: bool = True
    sample_rate: int = Field(gt=0)
    format: Literal["pcm_s16le", "f32le"]
    session_id: SessionId | None = None


class End(BaseModel):
    """The only text message allowed after the config: no more audio."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["end"]


class Ready(BaseModel):
    type: Literal["ready"] = "ready"
    session_id: str
    next_segment: int


class Done(BaseModel):
    type: Literal["done"] = "done"


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: str
    reason: str


CONFIG = TypeAdapter(StreamConfig)
SESSION_ID = TypeAdapter(SessionId)
CONTROL = TypeAdapter(End)


class ClientGone(Exception):
    """The client closed or dropped the connection: nobody is left to tell anything."""


# --- the route ------------------------------------------------------------------------------
@router.websocket("/ws/transcribe")
async def transcribe_stream(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    transcriber: Transcriber = websocket.app.state.transcriber
    if not await authorized(websocket, settings):
        return
    await websocket.accept()
    slot: Slot | None = None
    session: LiveSession | None = None
    try:
        async with asyncio.timeout(settings.live_max_session_s):
            slot = live_sessions(transcriber).reserve()
            config = await receive_config(websocket, settings.live_idle_timeout_s)
            first_segment = slot.claim(config.session_id)
            if not transcriber.engine.ready:
                raise TryAgainLater("The model is not ready; try again shortly.", "not_ready")
            session = LiveSession(
                transcriber,
                DecodeOptions(language=config.language, use_itn=config.use_itn),
                sample_rate=config.sample_rate,
                first_segment=first_segment,
            )
            assert slot.session_id is not None
            await send(websocket, Ready(session_id=slot.session_id, next_segment=first_segment))
            await run_session(websocket, session, config, settings.live_idle_timeout_s)
        await send(websocket, Done())
        await websocket.close(1000)
    except StreamError as error:
        await fail(websocket, error)
    except TimeoutError:
        limit = settings.live_max_session_s
        await fail(websocket, PolicyViolation(f"Streams end after {limit:g} s.", "too_long"))
    except ClientGone:
        log.info("live stream: client went away")
    except Exception:
        log.exception("live stream failed")
        await fail(websocket, StreamError("Internal error; the stream was closed."))
    finally:
        if session is not None:
            await session.aclose()
        if slot is not None:
            slot.release(session.next_segment if session else None)


async def authorized(websocket: WebSocket, settings: Settings) -> bool:
    """Check the API key before accepting: a Bearer header, or `?api_key=` for browsers.

    Browsers cannot set headers on a WebSocket, hence the query parameter; mind that proxies
    and access logs may record query strings.
    """
    keys = settings.api_keys
    if not keys:
        return True
    given = bearer_token(websocket.headers.get("authorization", "")) or (
        websocket.query_params.get("api_key")
    )
    if given and valid_key(keys, given):
        return True
    body = {"error": {"message": "Missing or invalid API key: send 'Authorization: Bearer "
                      "<key>' or ?api_key=<key>.", "type": "authentication_error",
                      "param": None, "code": "invalid_api_key"}}  # fmt: skip
    try:
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await websocket.send_denial_response(response)
    except RuntimeError:  # a server without the ASGI denial-response extension
        await websocket.close(1008, reason="invalid_api_key")
    return False


async def receive_config(websocket: WebSocket, idle_s: float) -> StreamConfig:
    message = await receive(websocket, idle_s)
    if message.get("text") is None:
        raise PolicyViolation(
            "The first message must be the JSON config, before any audio.", "invalid_config"
        )
    config = parse(CONFIG, message["text"], PolicyViolation, "invalid_config", "config")
    config.session_id = session_id_of(websocket, config)
    if config.sample_rate not in SAMPLE_RATES:
        raise UnsupportedData(
            f"Sample rate {config.sample_rate} Hz is not supported; use one of "
            f"{', '.join(map(str, SAMPLE_RATES))}.",
            "unsupported_sample_rate",
        )
    return config


def session_id_of(websocket: WebSocket, config: StreamConfig) -> str | None:
    """The config's session_id, else the URL's `?session_id=`.

    nginx can only route by the URL (it never sees the first message), so a client that
    wants a reconnect to reach the same process puts its id there; the config may repeat it.
    """
    in_url = websocket.query_params.get("session_id")
    if in_url is None:
        return config.session_id
    try:
        in_url = SESSION_ID.validate_python(in_url)
    except ValidationError:
        raise PolicyViolation(
            "The URL's session_id must be 1-64 letters, digits or . _ : -", "invalid_config"
        ) from None
    if config.session_id not in (None, in_url):
        raise PolicyViolation(
            "The session_id in the URL and in the config differ.", "invalid_config"
        )
    return in_url


async def run_session(
    websocket: WebSocket, session: LiveSession, config: StreamConfig, idle_s: float
) -> None:
    """Receive audio and send results side by side until the results are all out."""
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(receive_audio(websocket, session, config.format, idle_s))
            group.create_task(send_results(websocket, session))
    except BaseExceptionGroup as group:
        raise primary(group) from None


async def receive_audio(
    websocket: WebSocket, session: LiveSession, fmt: str, idle_s: float
) -> None:
    while True:
        message = await receive(websocket, idle_s)
        if (data := message.get("bytes")) is not None:
            await session.feed(pcm_samples(data, fmt))
            continue
        parse(CONTROL, message.get("text") or "", UnsupportedData, "invalid_message", "message")
        await session.finish()
        return


async def send_results(websocket: WebSocket, session: LiveSession) -> None:
    while (event := await session.events.get()) is not None:
        if isinstance(event, StreamError):
            raise event
        await send(websocket, event)


# --- helpers --------------------------------------------------------------------------------
async def receive(websocket: WebSocket, idle_s: float) -> dict:
    """The next message; only the client's silence counts toward the idle limit."""
    try:
        async with asyncio.timeout(idle_s):
            message = await websocket.receive()
    except TimeoutError:
        raise PolicyViolation(f"Nothing received for {idle_s:g} s.", "idle_timeout") from None
    if message["type"] == "websocket.disconnect":
        raise ClientGone
    return message


async def send(websocket: WebSocket, message: BaseModel) -> None:
    try:
        await websocket.send_text(message.model_dump_json())
    except (WebSocketDisconnect, RuntimeError, OSError) as error:
        raise ClientGone from error


async def fail(websocket: WebSocket, error: StreamError) -> None:
    """Tell the client why, then close with the code that says what kind of problem it was."""
    log.info("live stream closed: %s (%s)", error.code, error.message)
    try:
        await send(websocket, ErrorMessage(code=error.code, reason=error.message))
        await websocket.close(error.close_code, reason=error.code)
    except (ClientGone, RuntimeError, OSError):
        pass


def pcm_samples(data: bytes, fmt: str) -> np.ndarray:
    """One binary frame to float32 samples; a frame must hold whole samples."""
    width = SAMPLE_WIDTH[fmt]
    if len(data) % width:
        raise UnsupportedData(
            f"A binary frame must hold whole {fmt} samples ({width} bytes each); "
            f"got {len(data)} bytes.",
            "invalid_audio",
        )
    if fmt == "pcm_s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise UnsupportedData("The f32le audio holds NaN or infinite values.", "invalid_audio")
    return samples


def parse(adapter: TypeAdapter[T], text: str, kind: type[StreamError], code: str, what: str) -> T:
    """Validate a client message; a bad one ends the stream, with pydantic's findings."""
    try:
        return adapter.validate_json(text)
    except ValidationError as problem:
        findings = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'message'}: {item['msg']}"
            for item in problem.errors(include_url=False)
        )
        raise kind(f"Invalid {what}. {findings}", code) from None


def primary(group: BaseExceptionGroup) -> BaseException:
    """The exception that says why a receiver/sender pair stopped: ours before the rest."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    for kind in (StreamError, ClientGone):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0]
