"""`WS /v1/realtime?intent=transcription`: OpenAI's Realtime transcription session (GA shape).

The clients people already have (the openai SDK's `client.realtime.connect(...)`, voice-agent
frameworks) speak this protocol; it is mapped onto the same live core as `/ws/transcribe`
(live/stream.py): with `server_vad` turn detection the audio goes through a `LiveStream`, so
the online VAD, utterance cutting, finals-first decoding, session limits, idle and pace rules
and the drain on SIGTERM are the ones every live protocol has; with `turn_detection: null`
the client commits the buffer itself and each commit is transcribed as an upload. Under
server VAD the stream is cut with the session's `threshold`, `silence_duration_ms` and
`prefix_padding_ms` (the server's live settings unless the session sets them), and a commit
closes the utterance spoken so far.

With speaker labels on, each item's segments come as `.segment` events with their speakers
before it completes: a manual commit is diarized as an upload is; under server VAD each
utterance is labelled as it closes, against the speakers heard so far in the session
(live/speakers.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sensevoice_server import formats
from sensevoice_server.api import realtime_events as events
from sensevoice_server.api.auth import websocket_authorized
from sensevoice_server.api.deps import LiveSessionsDep, SettingsDep, TranscriberDep
from sensevoice_server.api.openai import served_names
from sensevoice_server.api.realtime_deltas import Deltas
from sensevoice_server.api.realtime_session import (
    RATES,
    BadEvent,
    SessionConfig,
    fixed_while_streaming,
    from_beta,
    server_vad,
    turns_of,
)
from sensevoice_server.api.websocket_io import ClientGone, send_text
from sensevoice_server.errors import PolicyViolation, ServiceError, StreamError
from sensevoice_server.live import LiveSessions, LiveStream, Stop
from sensevoice_server.live.audio import Resampler
from sensevoice_server.live.results import Heard
from sensevoice_server.pcm import g711_samples, wav_bytes
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import Transcriber
from sensevoice_server.transcript import Transcript

log = logging.getLogger(__name__)
router = APIRouter(tags=["streaming"])


@router.websocket("/v1/realtime")
async def realtime(
    websocket: WebSocket, settings: SettingsDep, sessions: LiveSessionsDep,
    transcriber: TranscriberDep,
) -> None:  # fmt: skip
    if not await websocket_authorized(websocket, settings):
        return
    # a browser offers "realtime" beside its key's subprotocol: one of them must be chosen
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
    connection = Connection(websocket, settings, sessions, transcriber)
    if websocket.query_params.get("intent") != "transcription":
        await connection.send(events.error(
            "This server serves transcription sessions only: connect with ?intent=transcription.",
            "invalid_intent"))  # fmt: skip
        await websocket.close(1008)
        return
    try:
        await connection.run()
    except (WebSocketDisconnect, ClientGone):
        log.info("realtime session: client went away")


class Connection:
    """One realtime session: client events in, server events out, one item per utterance."""

    def __init__(self, websocket: WebSocket, settings: Settings, sessions: LiveSessions,
                 transcriber: Transcriber) -> None:  # fmt: skip
        self.websocket, self.settings = websocket, settings
        self.sessions, self.transcriber = sessions, transcriber
        self.session_id = events.new_id("sess")
        defaults = server_vad(sessions.default_turns())
        self.config = SessionConfig(settings.served_model_name, defaults, defaults)
        self.configured = False
        self.previous_item: str | None = None
        self.timed_out_at = 0.0  # seconds of audio where the last idle timeout fired
        self.stream: LiveStream | None = None
        self.manual: list[np.ndarray] = []  # resampled audio awaiting a commit
        self.resampler: Resampler | None = None
        self._sending = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        async with self._sending:  # the relay task and the event loop both send
            await send_text(self.websocket, json.dumps(event, ensure_ascii=False))

    async def run(self) -> None:
        """Events until the client leaves or the session ends on the server's terms; then,
        unless the client is gone, the items of everything heard, and why it ended."""
        await self.send(events.event("session.created",
                                     session=self.config.as_session(self.session_id)))  # fmt: skip
        async with AsyncExitStack() as stack:
            relay: asyncio.Task[None] | None = None
            ending: StreamError | None = None
            gone = False
            try:
                while True:
                    try:
                        text = await self.next_text()
                        if text is None:
                            gone = True
                            break
                        await self.handle(text, stack)
                    except Stop as stop:  # idle, too fast, or the server's drain
                        ending = stop.error
                        break
                    except BadEvent as bad:
                        await self.send(events.error(str(bad), bad.code, param=bad.param))
                    if self.stream is not None and relay is None:
                        relay = asyncio.create_task(self.relay(self.stream))
            finally:
                if self.stream is not None and not gone:
                    await self.stream.finish()  # the finals of everything heard come out
                if relay is not None:
                    if gone:
                        relay.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ClientGone):
                        await relay
        if ending is not None:
            await self.send(events.error(ending.message, ending.code, kind="server_error"))
            await self.websocket.close(ending.close_code)

    async def next_text(self) -> str | None:
        """The next text frame (None: the client left), within the idle rule: the stream's
        once one is open, the same limit before."""
        receive = self.websocket.receive
        if self.stream is not None:
            message = await self.stream.receive(receive)
        else:
            limit = self.settings.live_idle_timeout_s
            try:
                async with asyncio.timeout(limit):
                    message = await receive()
            except TimeoutError:
                raise Stop(PolicyViolation(f"No event for {limit:g} s.", "idle_timeout")) from None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("text") is None:
            raise BadEvent("Send events as JSON text frames.", "invalid_event")
        return str(message["text"])

    async def handle(self, text: str, stack: AsyncExitStack) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            raise BadEvent("The event is not valid JSON.", "invalid_json") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "session.update":
            await self.update(message.get("session"))
        elif kind == "transcription_session.update":  # the retired beta shape, still sent
            await self.update(from_beta(message.get("session")))
        elif kind == "input_audio_buffer.append":
            await self.append(message.get("audio"), stack)
        elif kind == "input_audio_buffer.commit":
            await self.commit()
        elif kind == "input_audio_buffer.clear":
            self.manual, self.resampler = [], None
            await self.send(events.event("input_audio_buffer.cleared"))
        else:
            raise BadEvent(f"Unknown or unsupported event type {kind!r} for a transcription "
                           "session.", "invalid_event_type", "type")  # fmt: skip

    async def update(self, session: Any) -> None:
        config = self.config.updated(session, served_names(self.settings))
        if self.stream is not None and fixed_while_streaming(config) != fixed_while_streaming(
            self.config
        ):
            raise BadEvent("The audio format, turn detection, keywords and languages cannot "
                           "change once audio has been sent.", "invalid_value",
                           "session.audio.input")  # fmt: skip
        self.config, self.configured = config, True
        await self.send(events.event("session.updated",
                                     session=config.as_session(self.session_id)))  # fmt: skip

    async def append(self, audio: Any, stack: AsyncExitStack) -> None:
        if not self.configured:
            raise BadEvent("Send session.update (type transcription) before audio.",
                           "session_not_configured")  # fmt: skip
        samples = decode_audio(audio, self.config.format)
        rate = RATES[self.config.format]
        if self.config.turn_detection is None:
            limit = self.settings.max_duration_s  # a commit is transcribed as an upload
            if sum(len(part) for part in self.manual) / 16000 + len(samples) / rate > limit:
                raise BadEvent(f"The input audio buffer would hold more than {limit:g} s; "
                               "commit or clear it first.", "input_audio_buffer_too_long",
                               "audio")  # fmt: skip
            self.resampler = self.resampler or Resampler(rate)
            self.manual.append(self.resampler(samples))
            return
        if self.stream is None:
            options = self.config.options()
            try:
                turns = turns_of(self.config.turn_detection)
                self.stream = await stack.enter_async_context(
                    self.sessions.open(options, sample_rate=rate, turns=turns)
                )
            except StreamError as refused:  # the session limit, or a drain: closed
                raise Stop(refused) from None
        await self.stream.feed(samples)
        await self.time_out_if_idle(self.stream)

    async def time_out_if_idle(self, stream: LiveStream) -> None:
        """server_vad's `idle_timeout_ms`: after that much audio with no speech since the last
        item (or the last timeout), `timeout_triggered` and the silent stretch committed as
        an item, as OpenAI does. Where OpenAI's model would then respond, a transcription
        session has nothing to say: the item's transcript is empty."""
        assert self.config.turn_detection is not None
        idle_ms = self.config.turn_detection.get("idle_timeout_ms")
        quiet = stream.session.quiet_since()
        if not idle_ms or quiet is None:
            return
        start, now = max(quiet, self.timed_out_at), stream.session.audio_s
        if (now - start) * 1000 < idle_ms:
            return
        self.timed_out_at = now
        item = events.new_id("item")
        await self.send(events.event("input_audio_buffer.timeout_triggered",
                                     audio_start_ms=round(start * 1000),
                                     audio_end_ms=round(now * 1000), item_id=item))  # fmt: skip
        for out in events.committed(item, self.previous_item):
            await self.send(out)
        self.previous_item = item
        silent = {"language": "nospeech", "emotion": "", "events": []}
        for out in events.transcribed(item, "", "", now - start, silent):
            await self.send(out)

    async def commit(self) -> None:
        if self.config.turn_detection is not None:
            # server VAD: the utterance spoken so far becomes an item now (its events come
            # from the relay, as for a cut the VAD made), and listening goes on
            if self.stream is None or not await self.stream.commit():
                raise BadEvent("Nothing has been heard since the last item to commit.",
                               "input_audio_buffer_commit_empty")  # fmt: skip
            return
        if self.resampler is not None:
            self.manual.append(self.resampler.flush())
        samples = np.concatenate(self.manual) if self.manual else np.zeros(0, np.float32)
        self.manual, self.resampler = [], None
        if samples.size < 1600:  # under 100 ms, as OpenAI refuses it
            raise BadEvent("The input audio buffer holds less than 100 ms of audio.",
                           "input_audio_buffer_commit_empty")  # fmt: skip
        item = events.new_id("item")
        for event in events.committed(item, self.previous_item):
            await self.send(event)
        self.previous_item = item
        options = self.config.options()
        try:
            result = await self.transcriber.transcribe(wav_bytes(samples), options)
        except ServiceError as error:
            failure = {"type": "server_error", "message": error.message}
            await self.send(events.event("conversation.item.input_audio_transcription.failed",
                                         item_id=item, content_index=0, error=failure))  # fmt: skip
            return
        transcript = result.transcript
        extras: dict[str, Any] = {
            "language": transcript.language,
            "emotion": transcript.segments[0].emotion if transcript.segments else "",
            "events": sorted({e for s in transcript.segments for e in s.events}),
        }
        if options.logprobs:
            extras["logprobs"] = formats.logprobs(transcript)
        text = transcript.plain_text
        for event in events.speaker_segments(item, transcript):
            await self.send(event)
        for event in events.transcribed(item, text, text, transcript.duration,
                                        extras):  # fmt: skip
            await self.send(event)

    async def relay(self, stream: LiveStream) -> None:
        """Server VAD: the live session's partials and finals as realtime events, one item
        per utterance. `speech_started` comes with its first result and names the item; the
        words its partials agree on go out as deltas while it is spoken (realtime_deltas.py);
        its final brings the rest: stopped, committed, added, the last delta, completed."""
        open_items: dict[int, tuple[str, Deltas]] = {}
        logprobs = stream.session.options.logprobs
        while (event := await stream.session.events.get()) is not None:
            if isinstance(event, StreamError):
                await self.send(events.error(event.message, event.code, kind="server_error"))
                continue
            if event.segment not in open_items:
                open_items[event.segment] = (events.new_id("item"), Deltas())
                await self.send(events.event("input_audio_buffer.speech_started",
                                             audio_start_ms=round(event.start * 1000),
                                             item_id=open_items[event.segment][0]))  # fmt: skip
            item, deltas = open_items[event.segment]
            if not isinstance(event, Heard):
                if delta := deltas.partial(event.text):
                    await self.send(events.delta(item, delta))
                continue
            del open_items[event.segment]
            await self.send(events.event("input_audio_buffer.speech_stopped",
                                         audio_end_ms=round(event.end * 1000),
                                         item_id=item))  # fmt: skip
            for out in events.committed(item, self.previous_item):
                await self.send(out)
            self.previous_item = item
            delta, transcript = deltas.final(event.text)
            said = Transcript(event.end - event.start, [event.said] if event.said else [])
            for out in events.speaker_segments(item, said, offset=event.start):
                await self.send(out)
            for out in events.transcribed(item, delta, transcript, event.end - event.start,
                                          events.extras_of(event, logprobs)):  # fmt: skip
                await self.send(out)


def decode_audio(audio: Any, audio_format: str) -> np.ndarray:
    """An append's base64 audio as float32 samples at the format's rate."""
    if not isinstance(audio, str):
        raise BadEvent("audio must be a base64 string.", "invalid_audio", "audio")
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise BadEvent("audio is not valid base64.", "invalid_base64", "audio") from None
    if audio_format != "audio/pcm":
        return g711_samples(data, "mu" if audio_format == "audio/pcmu" else "a")
    if len(data) % 2:
        raise BadEvent("audio/pcm audio must hold whole 16-bit samples.", "invalid_audio",
                       "audio")  # fmt: skip
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
