"""`python -m sensevoice_server.cli stream FILE`: live captions of a file, over the WebSocket.

It decodes the file (any format FFmpeg reads), streams it to `WS /ws/transcribe` as 16 kHz
pcm_s16le at real time (or faster, `--speed`), and prints partial results on one line that
keeps being overwritten and each final result on a line of its own.

Files only: a microphone would need PortAudio (sounddevice) or direct ALSA/PulseAudio device
access, system dependencies this service does not otherwise have. `stream_samples()` is the
reusable client (the tests and bench/bench_streaming.py use it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sensevoice_server.audio import AudioLimits, decode
from sensevoice_server.live.protocol import End, StreamConfig, pcm16_bytes
from sensevoice_server.options import LANGUAGES, Spoken
from sensevoice_server.pcm import SAMPLE_RATE

DEFAULT_URL = "http://127.0.0.1:7860"
STREAM_PATH = "/ws/transcribe"
FILE_LIMITS = AudioLimits(max_bytes=2 * 10**9, max_duration_s=24 * 3600.0)

Message = dict[str, Any]
OnMessage = Callable[[Message, float], None]
"""Called as each server message arrives, with the stream's clock: seconds of audio time
since streaming began (wall time times speed; at speed 0, the audio sent so far)."""


class StreamFailed(Exception):
    """The server refused or ended the stream; the message says why."""


async def stream_samples(
    url: str,
    samples: np.ndarray,
    *,
    language: str = "auto",
    use_itn: bool = True,
    chunk_ms: int = 100,
    speed: float = 1.0,
    api_key: str | None = None,
    session_id: str | None = None,
    on_message: OnMessage | None = None,
    keywords: Sequence[str] = (),
    languages: Sequence[Spoken] = (),
    logprobs: bool = False,
) -> list[Message]:
    """Stream 16 kHz mono float32 samples; return every message the server sent, `done` last.

    Raises StreamFailed when the server answers with an error or refuses the connection.
    """
    pcm = pcm16_bytes(samples)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    config = StreamConfig(language=language, use_itn=use_itn, sample_rate=SAMPLE_RATE,
                          format="pcm_s16le", session_id=session_id,
                          keywords=list(keywords), languages=list(languages),
                          logprobs=logprobs)  # fmt: skip
    url = websocket_url(url)
    if session_id and "session_id=" not in url:  # where nginx looks to route a reconnect
        url += ("&" if "?" in url else "?") + urlencode({"session_id": session_id})
    try:
        # generous keepalive: a busy server may be slow to answer pings without being gone
        async with connect(url, additional_headers=headers, ping_timeout=60) as ws:
            await ws.send(config.model_dump_json(exclude_none=True))
            clock = _Clock(speed)
            sender = asyncio.create_task(_send_audio(ws, pcm, chunk_ms, clock))
            try:
                return await _receive_until_done(ws, clock, on_message)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    except InvalidStatus as refused:
        body = refused.response.body.decode(errors="replace") if refused.response.body else ""
        raise StreamFailed(f"HTTP {refused.response.status_code} {body}".strip()) from None


def websocket_url(url: str) -> str:
    """The stream's ws:// URL from the server's base URL (http://host:port), or as given."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else STREAM_PATH
    return urlunsplit(parts._replace(scheme=scheme, path=path))


class _Clock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.started = time.monotonic()
        self.sent_s = 0.0

    def __call__(self) -> float:
        if self.speed <= 0:
            return self.sent_s
        return (time.monotonic() - self.started) * self.speed


async def _send_audio(ws: ClientConnection, pcm: bytes, chunk_ms: int, clock: _Clock) -> None:
    step = max(2, SAMPLE_RATE * chunk_ms // 1000 * 2)
    try:
        for offset in range(0, len(pcm), step):
            if clock.speed > 0:  # chunk k leaves at k * chunk / speed: real-time pacing
                due = clock.started + offset / 2 / SAMPLE_RATE / clock.speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await ws.send(pcm[offset : offset + step])
            clock.sent_s = (offset + step) / 2 / SAMPLE_RATE
        await ws.send(End(type="end").model_dump_json())
    except ConnectionClosed:
        pass  # the receiver reports why


async def _receive_until_done(
    ws: ClientConnection, clock: _Clock, on_message: OnMessage | None
) -> list[Message]:
    messages: list[Message] = []
    try:
        async for raw in ws:
            message = json.loads(raw)
            messages.append(message)
            if on_message:
                on_message(message, clock())
            if message.get("type") == "error":
                raise StreamFailed(f"{message.get('code')}: {message.get('reason')}")
            if message.get("type") == "done":
                return messages
    except ConnectionClosed as closed:
        raise StreamFailed(f"connection closed ({closed.rcvd})") from None
    raise StreamFailed(f"connection closed before done ({ws.close_code} {ws.close_reason})")


# --- printing -------------------------------------------------------------------------------
def format_final(message: Message) -> str:
    """`[start-end] language emotion events text`, one line per final."""
    events = ",".join(message.get("events") or []) or "-"
    return (
        f"[{message['start']:7.2f}-{message['end']:7.2f}] {message.get('language') or '-'} "
        f"{message.get('emotion') or '-'} {events} {message.get('text', '')}"
    )


class Printer:
    """Partials overwrite one line (on a terminal only); finals get a line each."""

    def __init__(self, out: TextIO = sys.stdout, as_json: bool = False) -> None:
        self.out = out
        self.as_json = as_json
        self.live = out.isatty() and not as_json

    def __call__(self, message: Message, clock: float) -> None:
        kind = message.get("type")
        if self.as_json:
            print(json.dumps(message, ensure_ascii=False), file=self.out, flush=True)
        elif kind == "partial" and self.live:
            self.out.write(f"\r\033[K… [{message['start']:7.2f}] {message['text']}")
            self.out.flush()
        elif kind == "final":
            if self.live:
                self.out.write("\r\033[K")
            print(format_final(message), file=self.out, flush=True)


# --- the command ----------------------------------------------------------------------------
def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stream = commands.add_parser(
        "stream",
        help="stream an audio file to WS /ws/transcribe and print live captions",
        description="Stream FILE (any format FFmpeg reads; no microphone input) as 16 kHz "
        "pcm_s16le and print partial and final results.",
    )
    stream.add_argument("file", type=Path, help="audio file to stream")
    add_server_arguments(stream)
    stream.add_argument(
        "--speed", type=float, default=1.0,
        help="1 = real time (default), 10 = ten times faster, 0 = as fast as possible",
    )  # fmt: skip
    stream.add_argument("--chunk-ms", type=int, default=100, help="audio per message (100)")
    stream.add_argument("--language", default="auto", choices=LANGUAGES)
    stream.add_argument("--no-itn", action="store_true", help="no punctuation or number ITN")
    stream.add_argument("--session-id", help="continue the segment numbering of this session")
    stream.add_argument("--json", action="store_true", help="print each message as JSON")
    stream.set_defaults(run=run)


def add_server_arguments(
    parser: argparse.ArgumentParser, default: str | None = DEFAULT_URL
) -> None:
    """--url and --api-key, shared by the commands that talk to a running server."""
    default = os.environ.get("SENSEVOICE_URL", default)
    parser.add_argument(
        "--url", default=default,
        help=f"the server (default: $SENSEVOICE_URL, else {default or 'none: run in-process'})",
    )  # fmt: skip
    parser.add_argument(
        "--api-key", default=os.environ.get("SENSEVOICE_API_KEY"),
        help="API key, when the server has keys (default: $SENSEVOICE_API_KEY)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.speed < 0 or args.chunk_ms < 1:
        print("error: --speed must be >= 0 and --chunk-ms >= 1", file=sys.stderr)
        return 2
    try:
        samples = decode(args.file.read_bytes(), FILE_LIMITS)
    except Exception as error:  # OSError or the service's own decode errors
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    printer = Printer(as_json=args.json)
    try:
        asyncio.run(
            stream_samples(
                args.url, samples, language=args.language, use_itn=not args.no_itn,
                chunk_ms=args.chunk_ms, speed=args.speed, api_key=args.api_key,
                session_id=args.session_id, on_message=printer,
            )
        )  # fmt: skip
    except StreamFailed as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
