"""Gradio's upload route, bounded: audio only, nothing left behind, a cap on the folder.

Gradio's own `POST /gradio_api/upload` (gradio/routes.py, 6.31) keeps whatever it is sent:
200 MB of random bytes stayed in its folder for good, and a refused file name (`..`) or a
client that went away midway left its temporary file behind. This middleware answers the
route itself, with Gradio's own parser (`route_utils.upload_fn`), and adds what it lacks:
- each request is parsed into a staging folder of its own, which is removed whatever
  happens: a refusal, an error or an abort leaves nothing;
- each file's beginning is sniffed as it arrives (audio.sniff, FFmpeg's own probe): a file
  that is not audio is refused (415) without keeping any more of it; a container that may
  keep its index at the end (MP4, M4A, MOV) is checked whole once it is in;
- the folder's files and the uploads in flight stay under `ui_upload_max_mb`: beyond it a
  429 with Retry-After, before the body is read where its length is declared.
Files that pass move into Gradio's folder, each upload in a folder of its own (Gradio names
them by content, so two uploads of one silent microphone chunk shared a path, and removing
one after use removed the other), and into `blocks.upload_file_set`, where Gradio's
`delete_cache` ages them out (ui/uploads.py removes some sooner, once read). (Gradio's own
route also checks Gradio's `auth`; this app never sets it: api/login.py guards the UI.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from gradio.route_utils import upload_fn
from gradio.routes import file_upload_statuses
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sensevoice_server.api.errors import quoted
from sensevoice_server.api.refusal import content_length, refuse
from sensevoice_server.audio import SNIFF_BYTES, has_audio, sniff
from sensevoice_server.errors import (
    BadRequest,
    Busy,
    ServiceError,
    TooLarge,
    UnsupportedAudio,
)

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

UPLOAD_PATH = "/gradio_api/upload"
STAGING = ".incoming"  # inside the upload folder: same file system, so moves are renames
RESCAN_S = 5.0  # the folder's size is measured again this often (others remove files too)
EMPTY_DIR_AGE_S = 60.0  # an upload's folder left empty this long is removed with it
STALE_STAGING_S = 24 * 3600.0  # a staging folder this old was left by a process killed
NOT_AUDIO = (
    "{name} is not audio: upload a recording (WAV, MP3, M4A/AAC, OGG/Opus, FLAC, WebM, "
    "or a video with a sound track)."
)


class UploadFolder:
    """Gradio's upload folder: what it holds and what is on its way into it, under a cap.

    Its size is measured by walking it (Gradio's delete_cache and the UI remove files
    behind our back), at most every RESCAN_S, and kept up to date in between with what
    comes in; uploads in flight count by their declared length, or their bytes so far.
    """

    def __init__(self, path: Path, max_bytes: int, retry_after_s: int) -> None:
        self.path = path
        self.staging = path / STAGING
        self.max_bytes = max_bytes
        self.retry_after_s = retry_after_s
        self.stored = 0
        self.in_flight = 0
        self._measured_at = -math.inf
        self._measuring: asyncio.Lock | None = None

    async def measure(self) -> None:
        if self._measuring is None:
            self._measuring = asyncio.Lock()
        async with self._measuring:
            if time.monotonic() - self._measured_at >= RESCAN_S:
                self.stored = await asyncio.to_thread(sweep, self.path, self.staging)
                self._measured_at = time.monotonic()

    def admit(self, size: int) -> None:
        """Count `size` more bytes in flight, or refuse them (one upload alone always fits)."""
        taken = self.stored + self.in_flight
        if taken > 0 and taken + size > self.max_bytes:
            raise Busy(
                f"The upload folder is full ({self.max_bytes / 1e6:g} MB of files waiting "
                f"to be transcribed or removed): try again in {self.retry_after_s} s.",
                retry_after=self.retry_after_s,
            )
        self.in_flight += size

    @contextlib.asynccontextmanager
    async def staged(self) -> AsyncIterator[Path]:
        """A staging folder of one request's own, removed whatever happens."""
        folder = self.staging / secrets.token_hex(16)
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:  # not in a thread: this must run even in a task being cancelled
            shutil.rmtree(folder, ignore_errors=True)


def sweep(root: Path, staging: Path) -> int:
    """The bytes of the files under `root` (staging aside); removes the folders that
    Gradio's delete_cache left empty (it removes files only) once they are old enough, and
    what a killed process left in staging."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(staging):
            if entry.stat(follow_symlinks=False).st_mtime < time.time() - STALE_STAGING_S:
                shutil.rmtree(entry.path, ignore_errors=True)
    total = 0
    horizon = time.time() - EMPTY_DIR_AGE_S
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if root / d != staging]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
        if folder != str(root) and not dirs and not files:
            with contextlib.suppress(OSError):
                if os.stat(folder).st_mtime < horizon:
                    os.rmdir(folder)
    return total


class Sniffer:
    """Reads along with Gradio's parser and judges each file part by its beginning.

    `feed` raises UnsupportedAudio as soon as a file is not audio. `needs_whole` lists,
    in order, the file parts of the `files` field whose beginning could not tell.
    """

    def __init__(self, content_type: str) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks) if boundary else None
        self.needs_whole: list[bool] = []
        self._pending: list[tuple[str, bytes, bool]] = []  # (name, head, complete) to judge
        self._field = self._value = b""
        self._disposition = b""
        self._head: bytearray | None = None
        self._name = ""
        self._judged = False

    async def feed(self, chunk: bytes) -> None:
        if self._parser is None:
            return  # not multipart: upload_fn refuses it
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            self._parser = None  # malformed: Gradio's own parser says so
        pending, self._pending = self._pending, []
        for name, head, complete in pending:
            # an empty file takes no room: let through, transcribing it says it is empty
            verdict = (
                True if complete and not head else await asyncio.to_thread(sniff, head, complete)
            )
            if verdict is False:
                raise UnsupportedAudio(NOT_AUDIO.format(name=quoted(name)))
            self.needs_whole.append(verdict is None)

    def _begin(self) -> None:
        self._disposition, self._head, self._judged = b"", None, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field = self._value = b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == b"files" and b"filename" in options:
            self._head = bytearray()
            self._name = options[b"filename"].decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._head is None or self._judged:
            return
        self._head += data[start : min(end, start + SNIFF_BYTES - len(self._head))]
        if len(self._head) >= SNIFF_BYTES:
            self._judge(complete=False)

    def _end(self) -> None:
        if self._head is not None and not self._judged:
            self._judge(complete=True)

    def _judge(self, complete: bool) -> None:
        assert self._head is not None
        self._pending.append((self._name, bytes(self._head), complete))
        self._judged, self._head = True, None


class GradioUploads:
    """ASGI middleware: `POST {mount}/gradio_api/upload`, answered as the module says."""

    def __init__(
        self,
        app: ASGIApp,
        blocks: gr.Blocks,
        folder: Path,
        max_folder_bytes: int,
        max_file_bytes: int,
        retry_after_s: int,
        mount_path: str = "",
    ) -> None:
        self.app = app
        self.blocks = blocks
        self.route = mount_path.rstrip("/") + UPLOAD_PATH
        self.folder = UploadFolder(folder, max_folder_bytes, retry_after_s)
        self.max_file_bytes = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].rstrip("/") != self.route
        ):
            await self.app(scope, receive, send)
            return
        upload = Upload(self, scope, receive)
        try:
            paths = await upload.run()
        except ClientDisconnect:
            return  # nobody to answer; the staging folder is gone already
        except ServiceError as error:
            await refuse(error, scope, receive, send, discard=not upload.body_done)
            return
        await JSONResponse(paths)(scope, receive, send)


class Upload:
    """One upload request, from its first byte to its files in Gradio's folder."""

    def __init__(self, route: GradioUploads, scope: Scope, receive: Receive) -> None:
        self.route = route
        self.folder = route.folder
        self.scope = scope
        self.receive = receive
        self.declared = content_length(scope)
        self.admitted = 0  # bytes counted in flight for this request
        self.body_done = False
        headers = dict(scope.get("headers") or [])
        self.sniffer = Sniffer(headers.get(b"content-type", b"").decode("latin-1"))
        self.upload_id = Request(scope).query_params.get("upload_id")

    async def run(self) -> list[str]:
        await self.folder.measure()
        self.folder.admit(self.declared or 0)
        self.admitted = self.declared or 0
        try:
            async with self.folder.staged() as staging:
                staged = await self._parse(staging)
                await self._check_whole(staged)
                paths = await asyncio.to_thread(self._keep, staged)
        except BaseException:
            if self.upload_id:
                file_upload_statuses.set_done(self.upload_id)  # a progress bar stops too
            raise
        finally:
            self.folder.in_flight -= self.admitted
        self.folder.stored += sum(os.path.getsize(p) for p in paths)
        self.route.blocks.upload_file_set.update(paths)
        return paths

    async def _parse(self, staging: Path) -> list[str]:
        request = Request(self.scope, self._receive)
        try:
            output, _, _ = await upload_fn(
                request, str(staging), self.route.max_file_bytes, self.upload_id,
                force_move=True,
                upload_progress=file_upload_statuses if self.upload_id else None,
            )  # fmt: skip
        except MultiPartException as error:
            if "maximum allowed size" in error.message:
                raise TooLarge(error.message) from None
            raise BadRequest(error.message) from None
        except HTTPException as error:  # a bad content type, or a file name such as ".."
            raise BadRequest(str(error.detail)) from None
        except TypeError as error:  # a `files` field that is not a file
            raise BadRequest(str(error)) from None
        return [str(path) for path in output]

    async def _receive(self) -> Message:
        """The client's messages, read along by the sniffer; chunked bodies are counted
        against the folder's cap as they come."""
        message = await self.receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.body_done = not message.get("more_body", False)
            if self.declared is None and chunk:
                self.folder.admit(len(chunk))
                self.admitted += len(chunk)
            await self.sniffer.feed(chunk)
        return message

    async def _check_whole(self, staged: list[str]) -> None:
        """The files whose beginning could not tell (or that the sniffer could not read
        along: a body only Gradio's parser made sense of), opened whole now they are in."""
        verdicts = self.sniffer.needs_whole
        for index, path in enumerate(staged):
            whole = verdicts[index] if index < len(verdicts) else True
            if whole and not await asyncio.to_thread(has_audio, path):
                raise UnsupportedAudio(NOT_AUDIO.format(name=quoted(Path(path).name)))

    def _keep(self, staged: list[str]) -> list[str]:
        """Each staged file's folder moved into Gradio's folder under a fresh name."""
        moved: dict[Path, Path] = {}
        kept = []
        for path in map(Path, staged):
            if path.parent not in moved:
                target = self.folder.path / secrets.token_hex(16)
                os.rename(path.parent, target)  # the folder with its files: never empty
                moved[path.parent] = target
            kept.append(str(moved[path.parent] / path.name))
        return kept
