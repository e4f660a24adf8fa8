"""`corpus --url URL`: the corpus job against a running server, whose cache and queue then
apply; the rows are the in-process run's, written by the same loop and writer (corpus.py).

Each file goes to the OpenAI-compatible route as `verbose_json`: it keeps every segment
(the native JSON drops those without words), with the rich text, the plain text, language,
emotion and events of each, and the words when asked for. A file the server refuses (400,
413, 415: empty, too long, not audio) is a failed row with the server's sentence, a busy
server (429, 503) is asked again after its Retry-After, and anything else (the server down,
a 500) stops the job: the rows written so far stay, and the rerun goes on from there.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from sensevoice_server.cli.remote import ROUTE, TIMEOUT_S, message_of
from sensevoice_server.errors import ServiceError, StartupError
from sensevoice_server.options import DecodeOptions
from sensevoice_server.transcript import Segment, Transcript

RETRIES = 50  # busy answers survived per file before the job stops
REFUSED = frozenset({400, 413, 415})  # the file's fault: a failed row
BUSY = frozenset({429, 503})


class Remote:
    def __init__(self, options: DecodeOptions, args: argparse.Namespace) -> None:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        self.url = args.url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.url, headers=headers,
                                         timeout=httpx.Timeout(TIMEOUT_S, connect=10))  # fmt: skip
        self.form = form_of(options)
        self.model = ""

    async def rows(
        self, path: str, sha: str, data: bytes
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            body = await self.transcription(path, data)
        except httpx.HTTPError as error:
            raise StartupError(f"{self.url} did not answer: {error}") from None
        return rows_of(body, path, sha)

    async def transcription(self, path: str, data: bytes) -> dict[str, Any]:
        if not self.model:
            self.model = await self.served_model()
        for _ in range(RETRIES):
            answer = await self.client.post(ROUTE, files={"file": (Path(path).name, data)},
                                            data={**self.form, "model": self.model})  # fmt: skip
            if answer.status_code not in BUSY:
                break
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code in REFUSED:
            raise ServiceError(message_of(answer))
        if answer.status_code != 200:
            raise StartupError(f"{self.url}: HTTP {answer.status_code}: {message_of(answer)}")
        body: dict[str, Any] = answer.json()
        return body

    async def served_model(self) -> str:
        answer = await self.client.get("/v1/models")
        if answer.status_code != 200:
            raise StartupError(f"{self.url}/v1/models: HTTP {answer.status_code}: "
                               f"{message_of(answer)}")  # fmt: skip
        return str(answer.json()["data"][0]["id"])

    async def close(self) -> None:
        await self.client.aclose()


def form_of(options: DecodeOptions) -> dict[str, Any]:
    """The route's form for the decode options (the server's own options otherwise)."""
    form: dict[str, Any] = {"response_format": "verbose_json", "language": options.language,
                            "use_itn": str(options.use_itn).lower(),
                            "timestamp_granularities[]": ["segment"]}  # fmt: skip
    if options.word_timestamps:
        form["timestamp_granularities[]"] = ["segment", "word"]
    if options.keywords:
        form["keywords[]"] = list(options.keywords)
    if options.languages:
        form["languages[]"] = list(options.languages)
    return form


Row = dict[str, Any]


def rows_of(body: dict[str, Any], path: str, sha: str) -> tuple[Row, list[Row]]:
    """The rows done_row and segment_rows (corpus_rows.py) give in-process, from verbose_json."""
    segments = body.get("segments", [])
    spans = [Segment(s["start"], s["end"], s["plain_text"], s["language"], s["emotion"],
                     s["events"], raw="") for s in segments]  # fmt: skip
    language = Transcript(body["duration"], spans).language  # the language spoken longest
    file_row = {"path": path, "sha256": sha, "status": "done", "error": None,
                "duration": body["duration"], "language": language}  # fmt: skip
    rows = []
    for segment, words in zip(segments, words_by_segment(segments, body.get("words", [])),
                              strict=True):  # fmt: skip
        row: dict[str, Any] = {
            "sha256": sha, "path": path, "start": segment["start"], "end": segment["end"],
            "text": segment["text"], "plain_text": segment["plain_text"],
            "language": segment["language"], "emotion": segment["emotion"],
            "events": segment["events"],
        }  # fmt: skip
        if words:
            row["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                            for w in words]  # fmt: skip
        if "speaker" in segment:  # "S1", "S2", ...: the manifest counts from 0
            row["speaker"] = int(segment["speaker"][1:]) - 1
        rows.append(row)
    return file_row, rows


def words_by_segment(segments: list[Row], words: list[Row]) -> list[list[Row]]:
    """verbose_json lists words at the top level, in order, each inside its segment's
    times: they are dealt back to their segments in that order."""
    dealt: list[list[Row]] = [[] for _ in segments]
    index = 0
    for word in words:
        while index < len(segments) - 1 and not (
            segments[index]["start"] <= word["start"] and word["end"] <= segments[index]["end"]
        ):
            index += 1
        dealt[index].append(word)
    return dealt
