"""The batch CLI's client of a running server: each file's output asked of the server.

The server renders every format itself (its cache and queue apply); a 429 is retried after
its Retry-After, so --concurrency may exceed what one replica admits at once.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from sensevoice_server.cli.files import read_input

RETRIES = 50  # 429s survived per file before it fails
TIMEOUT_S = 3 * 3600.0  # a long file on a busy server takes a while


class RemoteTranscriber:
    def __init__(self, args: argparse.Namespace, max_bytes: int) -> None:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        self._client = httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(TIMEOUT_S, connect=10))  # fmt: skip
        self._args = args
        self._max_bytes = max_bytes  # an input larger than this is refused unread

    async def transcribe(self, source: Path) -> tuple[str, float]:
        route, form = self._request()
        data = await asyncio.to_thread(read_input, source, self._max_bytes)
        for _ in range(RETRIES):
            answer = await self._client.post(route, files={"file": (source.name, data)}, data=form)
            if answer.status_code != 429:
                break
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {message_of(answer)}")
        if route == "/api/transcribe":
            body = answer.json()
            import json

            return json.dumps(body, ensure_ascii=False, indent=2) + "\n", float(body["duration"])
        text = answer.text if answer.text.endswith("\n") else answer.text + "\n"
        return text, float(answer.headers.get("X-Audio-Duration", "0"))

    def _request(self) -> tuple[str, dict[str, Any]]:
        args = self._args
        if args.format == "json":
            return "/api/transcribe", {"language": args.language, "use_itn": str(not args.no_itn),
                                       "word_timestamps": str(args.words)}  # fmt: skip
        form: dict[str, Any] = {"model": "sensevoice-small", "language": args.language
                                if args.language != "auto" else ""}  # fmt: skip
        fmt = {"txt": "text"}.get(args.format, args.format)
        form["response_format"] = fmt
        if fmt in ("srt", "vtt"):
            form.update(max_line_chars=str(args.max_line_chars), max_cue_s=str(args.max_cue_s),
                        subtitle_tags=str(not args.no_tags))  # fmt: skip
        if fmt == "verbose_json" and args.words:
            form["timestamp_granularities[]"] = ["word", "segment"]
        return "/v1/audio/transcriptions", form

    async def aclose(self) -> None:
        await self._client.aclose()


def message_of(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text[:200]
