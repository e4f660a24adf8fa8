"""Transcripts as files the browser downloads: TXT, SRT, VTT and JSON, through formats.py.

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

from sensevoice_server.formats import render_file
from sensevoice_server.transcript import Transcript

FORMATS = {"txt": "TXT", "srt": "SRT", "vtt": "VTT", "json": "JSON"}
ROOT = Path(tempfile.gettempdir()) / "sensevoice-downloads"
KEEP_S = 3600


def button_updates(transcript: Transcript | None, stem: str) -> list[Any]:
    """The download buttons' new state: hidden without speech, else each with its file."""
    if transcript is None or transcript.no_speech:
        return [gr.DownloadButton(visible=False) for _ in FORMATS]
    paths = write_downloads(transcript, stem)
    return [gr.DownloadButton(value=str(paths[fmt]), visible=True) for fmt in FORMATS]


def download_buttons(id_prefix: str) -> list[Any]:
    """One hidden button per format (shown once there is a transcript), ids `PREFIX-FMT`."""
    return [
        gr.DownloadButton(f"Download {label}", visible=False, size="sm",
                          elem_id=f"{id_prefix}-{fmt}")
        for fmt, label in FORMATS.items()
    ]  # fmt: skip


def write_downloads(transcript: Transcript, stem: str = "transcript") -> dict[str, Path]:
    """One file per format, in a fresh directory: {"txt": path, ...}."""
    directory = fresh_directory()
    paths = {}
    for fmt in FORMATS:
        path = directory / f"{safe_stem(stem)}.{fmt}"
        path.write_text(render_file(transcript, fmt), encoding="utf-8")
        paths[fmt] = path
    return paths


def write_zip(transcripts: list[tuple[str, Transcript]]) -> Path:
    """Every transcript in every format, in one ZIP."""
    path = fresh_directory() / "transcripts.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, transcript) in enumerate(transcripts):
            stem = f"{index + 1:03d}-{safe_stem(name)}"
            for fmt in FORMATS:
                archive.writestr(f"{stem}.{fmt}", render_file(transcript, fmt))
    return path


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
