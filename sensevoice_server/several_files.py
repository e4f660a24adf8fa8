"""Several uploads in one request (the batch route, the UI's Several files tab): each is
answered on its own, so one bad file fails alone, and they share the model politely."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sensevoice_server.audio import Upload
from sensevoice_server.errors import ServiceError
from sensevoice_server.options import DecodeOptions
from sensevoice_server.transcriber import Transcriber, TranscriptionResult

Outcome = TranscriptionResult | ServiceError
IN_FLIGHT = 2  # one decoding while the other runs: the model stays fed


async def transcribe_many(
    transcriber: Transcriber,
    uploads: Sequence[Upload | ServiceError],
    options: DecodeOptions,
    on_done: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Every upload's result or error, in order.

    Cached ones are answered first; at most IN_FLIGHT misses run at once, which keeps the
    model fed without filling the queue that other users share. An upload that is already
    an error (too large, say) stays one.
    """
    cached = [
        None if isinstance(data, ServiceError) else await transcriber.lookup(data, options)
        for data in uploads
    ]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> Outcome:
        data, result = uploads[index], cached[index]
        try:
            if isinstance(data, ServiceError):
                raise data
            if result is None:
                async with gate:
                    result = await transcriber.transcribe(data, options, looked_up=True)
        except ServiceError as error:
            outcome: Outcome = error
        else:
            outcome = result
        if on_done is not None:
            on_done(index, outcome)
        return outcome

    return list(await asyncio.gather(*(one(i) for i in range(len(uploads)))))
