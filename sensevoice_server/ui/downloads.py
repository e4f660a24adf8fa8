"""Transcripts as files the browser downloads: each format of formats.py's table that has a
button label (TXT, SRT, VTT, and verbose_json as JSON), rendered there as the API renders it.
The UI always decodes word times (its subtitles need them), so its JSON carries the words: the
same bytes as the API's verbose_json with `timestamp_granularities[]=word,segment`.

Files are written under the temporary directory (where Gradio may serve files from) in a
directory per transcript; Gradio copies them into its own cache when it sends them, so
anything older than an hour is removed as new ones are written.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import gradio as gr

from sensevoice_server.formats import FORMATS, Format, Rendering
from sensevoice_server.transcript import Transcript

OFFERED: list[Format] = [fmt for fmt in FORMATS.values() if fmt.label]
RENDERING = Rendering(words=True)  # the default cue limits, every segment and every word
ROOT = Path(tempfile.gettempdir()) / "sensevoice-downloads"
KEEP_S = 3600


def button_updates(transcript: Transcript | None, stem: str) -> list[Any]:
    """The download buttons' new state: hidden without speech, else each with its file."""
    if transcript is None or transcript.no_speech:
        return [gr.DownloadButton(visible=False) for _ in OFFERED]
    paths = write_downloads(transcript, stem)
    return [gr.DownloadButton(value=str(paths[fmt.name]), visible=True) for fmt in OFFERED]


def download_buttons(id_prefix: str) -> list[Any]:
    """One hidden button per format (shown once there is a transcript), ids `PREFIX-NAME`."""
    return [
        gr.DownloadButton(f"Download {fmt.label}", visible=False, size="sm",
                          elem_id=f"{id_prefix}-{fmt.name}")
        for fmt in OFFERED
    ]  # fmt: skip


def write_downloads(transcript: Transcript, stem: str = "transcript") -> dict[str, Path]:
    """One file per format offered, in a fresh directory: {"text": path, ...}."""
    directory = fresh_directory()
    paths: dict[str, Path] = {}
    for fmt in OFFERED:
        path = directory / f"{safe_stem(stem)}{fmt.suffix}"
        path.write_bytes(render(transcript, fmt))
        paths[fmt.name] = path
    return paths


def write_zip(transcripts: list[tuple[str, Transcript]]) -> Path:
    """Every transcript in every format, in one ZIP."""
    path = fresh_directory() / "transcripts.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, transcript) in enumerate(transcripts):
            stem = f"{index + 1:03d}-{safe_stem(name)}"
            for fmt in OFFERED:
                archive.writestr(f"{stem}{fmt.suffix}", render(transcript, fmt))
    return path


def render(transcript: Transcript, fmt: Format) -> bytes:
    """A file's bytes (UTF-8, and "\n" whatever the platform: the API's bytes exactly)."""
    return fmt.render(transcript, RENDERING).encode()


def fresh_directory() -> Path:
    ROOT.mkdir(parents=True, exist_ok=True)
    horizon = time.time() - KEEP_S
    for old in ROOT.iterdir():
        if old.stat().st_mtime < horizon:
            shutil.rmtree(old, ignore_errors=True)
    directory = ROOT / secrets.token_hex(8)
    directory.mkdir()
    return directory


def safe_stem(name: str) -> str:
    """A file name's stem made safe to write (a client's name never becomes a path)."""
    stem = Path(name).stem or "transcript"
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80].strip("._")
    return kept or "transcript"
