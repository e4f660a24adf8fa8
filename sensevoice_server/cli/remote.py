"""The batch CLI's client of a running server: each file's output asked of the server.

The server renders every format itself (formats.py, through the OpenAI-compatible route; its
cache and queue apply), and its answer is written as it came: the same bytes as an in-process
run gives. A 429 is retried after its Retry-After, so --concurrency may exceed what one
replica admits at once.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from sensevoice_server.cli.files import read_input

ROUTE = "/v1/audio/transcriptions"
RETRIES = 50  # 429s survived per file before it fails
TIMEOUT_S = 3 * 3600.0  # a long file on a busy server takes a while


class RemoteTranscriber:
    def __init__(self, args: argparse.Namespace, max_bytes: int) -> None:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        self._client = httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(TIMEOUT_S, connect=10))  # fmt: skip
        self._form = form_of(args)
        self._max_bytes = max_bytes  # an input larger than this is refused unread
        self._model: asyncio.Task[str] | None = None

    async def transcribe(self, source: Path) -> tuple[str, float]:
        form = {**self._form, "model": await self.model()}
        data = await asyncio.to_thread(read_input, source, self._max_bytes)
        for _ in range(RETRIES):
            answer = await self._client.post(ROUTE, files={"file": (source.name, data)}, data=form)
            if answer.status_code != 429:
                break
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {message_of(answer)}")
        return answer.content.decode(), float(answer.headers.get("X-Audio-Duration", "0"))

    async def model(self) -> str:
        """The name the server serves its model under (asked once, by the first file)."""
        if self._model is None:
            self._model = asyncio.ensure_future(self._served_model())
        return await self._model

    async def _served_model(self) -> str:
        answer = await self._client.get("/v1/models")
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code} from /v1/models: {message_of(answer)}")
        return str(answer.json()["data"][0]["id"])

    async def aclose(self) -> None:
        await self._client.aclose()


def form_of(args: argparse.Namespace) -> dict[str, Any]:
    """The route's form for the CLI's flags: the format by its name, and what changes it."""
    form: dict[str, Any] = {"response_format": args.format, "language": args.language,
                            "use_itn": str(not args.no_itn).lower(),
                            "max_line_chars": str(args.max_line_chars),
                            "max_cue_s": str(args.max_cue_s),
                            "subtitle_tags": str(not args.no_tags).lower()}  # fmt: skip
    if args.keyword_list:
        form["keywords[]"] = list(args.keyword_list)
    if args.language_list:
        form["languages[]"] = list(args.language_list)
    if args.words:  # the in-process run's verbose_json has words with --words; so does this
        form["timestamp_granularities[]"] = ["word", "segment"]
    return form


def message_of(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text[:200]
