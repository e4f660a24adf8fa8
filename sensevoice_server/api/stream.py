"""`WS /ws/transcribe`: live captions for a stream of raw PCM audio.

The messages are defined in live/protocol.py; this route only moves them between the socket
and a `LiveStream`, whose rules (idle, pace, the drain) are the live core's. A connection
takes one of the process's live places only once its config is valid, and has a short
deadline to send it. Without a valid API key (when keys are set) the upgrade itself is
refused with HTTP 401.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, TypeAdapter, ValidationError

from sensevoice_server.api.auth import websocket_authorized
from sensevoice_server.api.deps import LiveSessionsDep, SettingsDep, TranscriberDep
from sensevoice_server.api.websocket_io import ClientGone, send_text
from sensevoice_server.errors import PolicyViolation, StreamError, TryAgainLater, UnsupportedData
from sensevoice_server.live import LiveStream, Preview, Stop
from sensevoice_server.live.protocol import (
    CONFIG,
    CONTROL,
    SAMPLE_RATES,
    SESSION_ID,
    Done,
    ErrorMessage,
    Ready,
    StreamConfig,
    final_message,
    partial_message,
    pcm_samples,
)
from sensevoice_server.options import DecodeOptions, checked_keywords, checked_languages

log = logging.getLogger(__name__)
router = APIRouter(tags=["streaming"])
T = TypeVar("T")
CONFIG_DEADLINE_S = 10.0  # at most this long (or the idle limit) to send the config


@router.websocket("/ws/transcribe")
async def transcribe_stream(
    websocket: WebSocket,
    settings: SettingsDep,
    sessions: LiveSessionsDep,
    transcriber: TranscriberDep,
) -> None:
    if not await websocket_authorized(websocket, settings):
        return
    await websocket.accept()
    try:
        async with asyncio.timeout(settings.live_max_session_s):
            deadline = min(settings.live_idle_timeout_s, CONFIG_DEADLINE_S)
            config = await receive_config(websocket, deadline)
            options = DecodeOptions(
                language=config.language, use_itn=config.use_itn,
                word_timestamps=config.word_timestamps, logprobs=config.logprobs,
                keywords=checked_keywords(config.keywords),
                languages=checked_languages(config.languages),
            )  # fmt: skip
            # the place is taken only now, so silent connections hold none (and during a
            # drain, opening is what answers "going away")
            async with sessions.open(
                options, sample_rate=config.sample_rate, session_id=config.session_id
            ) as stream:
                if not transcriber.ready:
                    raise TryAgainLater("The model is not ready; try again shortly.", "not_ready")
                ready = Ready(
                    session_id=stream.session_id, next_segment=stream.session.next_segment
                )
                await send(websocket, ready)
                await run_session(websocket, stream, config)
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


async def receive_config(websocket: WebSocket, deadline_s: float) -> StreamConfig:
    try:
        async with asyncio.timeout(deadline_s):
            message = await websocket.receive()
    except TimeoutError:
        raise PolicyViolation(
            f"No config received within {deadline_s:g} s of connecting.", "idle_timeout"
        ) from None
    if message["type"] == "websocket.disconnect":
        raise ClientGone
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


async def run_session(websocket: WebSocket, stream: LiveStream, config: StreamConfig) -> None:
    """Receive audio and send results side by side until the results are all out.

    When the stream ends on the server's terms (idle, too fast, the server shutting down),
    the client still gets the finals of what it sent: the audio ends there, the session
    decodes what was heard, and only then is the stream closed with the reason.
    """
    ending: StreamError | None = None

    async def receive_then_finish() -> None:
        nonlocal ending
        try:
            await receive_audio(websocket, stream, config.format)
        except Stop as stop:
            ending = stop.error
        await stream.finish()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(receive_then_finish())
            group.create_task(send_results(websocket, stream, config))
    except BaseExceptionGroup as group:
        raise primary(group) from None
    if ending is not None:
        raise ending


async def receive_audio(websocket: WebSocket, stream: LiveStream, fmt: str) -> None:
    while True:
        message = await stream.receive(websocket.receive)  # the idle rule and the drain
        if message["type"] == "websocket.disconnect":
            raise ClientGone
        if (data := message.get("bytes")) is not None:
            await stream.feed(pcm_samples(data, fmt))
            continue
        parse(CONTROL, message.get("text") or "", UnsupportedData, "invalid_message", "message")
        return


async def send_results(websocket: WebSocket, stream: LiveStream, config: StreamConfig) -> None:
    while (event := await stream.session.events.get()) is not None:
        if isinstance(event, StreamError):
            raise event
        if isinstance(event, Preview):
            await send(websocket, partial_message(event))
        else:
            await send(websocket, final_message(event, config))


# --- helpers --------------------------------------------------------------------------------
async def send(websocket: WebSocket, message: BaseModel) -> None:
    await send_text(websocket, message.model_dump_json())


async def fail(websocket: WebSocket, error: StreamError) -> None:
    """Tell the client why, then close with the code that says what kind of problem it was."""
    log.info("live stream closed: %s (%s)", error.code, error.message)
    try:
        await send(websocket, ErrorMessage(code=error.code, reason=error.message))
        await websocket.close(error.close_code, reason=error.code)
    except (ClientGone, RuntimeError, OSError):
        pass


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
