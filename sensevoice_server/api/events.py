"""OpenAI's streamed transcription: server-sent events, one segment at a time as it decodes.

Events, as OpenAI's OpenAPI document defines them: `transcript.text.delta` for each segment's
text (the deltas add up to the final text), `transcript.text.segment` with its speaker when
diarized_json was asked for, and `transcript.text.done` with the whole text. The answer's
status is decided before the stream starts: the upload is admitted and decoded first, so a
bad file still gets its 4xx; the stream begins with the first segment (or the whole answer,
from the cache). A client that leaves before then stops the work at once (a 499 in the
access log), as one that leaves mid-stream does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from sensevoice_server import formats
from sensevoice_server.api.uploads import log_result, unless_client_leaves
from sensevoice_server.audio import Upload
from sensevoice_server.options import DecodeOptions
from sensevoice_server.transcriber import Transcriber, TranscriptionResult
from sensevoice_server.transcript import Joiner, Segment


async def stream_transcription(
    request: Request,
    transcriber: Transcriber,
    data: Upload,
    options: DecodeOptions,
    *,
    diarized: bool,
) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[Segment] = asyncio.Queue()

    def decoded(segment: Segment) -> None:  # from the engine's thread
        loop.call_soon_threadsafe(segments.put_nowait, segment)

    work = asyncio.ensure_future(transcriber.transcribe(data, options, on_segment=decoded))
    first = asyncio.ensure_future(segments.get())
    try:
        # Until the first segment (the VAD over a long file takes seconds) nothing is sent, so
        # a client that leaves is noticed by watching for its disconnect, and the work stops.
        await unless_client_leaves(
            request, asyncio.wait({work, first}, return_when=asyncio.FIRST_COMPLETED)
        )
    except BaseException:
        work.cancel()
        first.cancel()
        raise
    if work.done() and work.exception() is not None:
        first.cancel()
        raise work.exception()  # type: ignore[misc]  # rendered by api/errors.py, as usual
    events = sse(produce(request, work, first, segments, options, diarized))
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})  # fmt: skip


async def produce(
    request: Request,
    work: asyncio.Future[TranscriptionResult],
    first: asyncio.Future[Segment],
    segments: asyncio.Queue[Segment],
    options: DecodeOptions,
    diarized: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The events, segment by segment while the work runs, then the rest and `done`."""
    joiner = Joiner()
    streamed = 0
    waiting: asyncio.Future[Segment] | None = first
    try:
        while not work.done() or (waiting is not None and waiting.done()):
            waiting = waiting or asyncio.ensure_future(segments.get())
            pending: set[asyncio.Future[Any]] = {work, waiting}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                for event in segment_events(joiner, streamed, waiting.result(), options, diarized):
                    yield event
                streamed, waiting = streamed + 1, None
        while not segments.empty():  # decoded just before the work finished
            for event in segment_events(joiner, streamed, segments.get_nowait(), options, diarized):
                yield event
            streamed += 1
        result = work.result()
        for segment in result.transcript.segments[streamed:]:  # a cached answer: all at once
            for event in segment_events(joiner, streamed, segment, options, diarized):
                yield event
            streamed += 1
        log_result(request, result)
        yield done_event(result, options)
    finally:
        if waiting is not None:
            waiting.cancel()
        if not work.done():  # the client went away mid-stream: stop the work
            work.cancel()


async def sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def segment_events(
    joiner: Joiner, index: int, segment: Segment, options: DecodeOptions, diarized: bool
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    delta = joiner.add(segment.rich, segment.language)
    if delta:
        event: dict[str, Any] = {"type": "transcript.text.delta", "delta": delta}
        if options.logprobs:
            event["logprobs"] = token_logprobs(segment)
        events.append(event)
    if diarized and segment.text:
        events.append(formats.diarized_segment(index, segment))
    return events


def done_event(result: TranscriptionResult, options: DecodeOptions) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "transcript.text.done", "text": result.transcript.rich_text}
    if options.logprobs:
        event["logprobs"] = formats.logprobs(result.transcript)
    return event


def token_logprobs(segment: Segment) -> list[dict[str, Any]]:
    return [
        {"token": item.token, "logprob": item.logprob, "bytes": list(item.token.encode())}
        for item in segment.logprobs
    ]
