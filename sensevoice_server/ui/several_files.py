"""The Several files tab: several files at once, each transcribed on its own (the /api/batch path),
with progress per file, one table of results and every transcript in one ZIP. It takes what
the API takes: audio files, and videos by their sound track. The files are removed once read
(ui/uploads.py), and the list is cleared with them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from sensevoice_server.audio import check_size
from sensevoice_server.errors import BadRequest, ServiceError
from sensevoice_server.several_files import transcribe_many
from sensevoice_server.transcriber import Transcriber, TranscriptionResult
from sensevoice_server.ui.downloads import write_zip
from sensevoice_server.ui.refusals import refused
from sensevoice_server.ui.transcribe import (
    NO_SPEECH,
    itn_checkbox,
    keywords_box,
    language_dropdown,
    languages_box,
    options_of,
)
from sensevoice_server.ui.video import MEDIA_TYPES

RESULT_COLUMNS = ["file", "status", "language", "seconds", "transcript"]
# as ui/transcribe.py's segments: the short columns in px, the transcript the rest
RESULT_WIDTHS: list[str | int] = ["180px", "100px", "90px", "90px", "50%"]
EVENT = "transcribe all"  # as the log names it


def build_several_files_tab(transcriber: Transcriber, *, max_files: int) -> gr.File:
    """Add the tab's components and events to the gr.Blocks being built; its file input,
    whose uploads are removed once a run has read them (ui/uploads.py)."""
    limit = max_files

    async def transcribe_all(
        files: list[dict[str, Any]] | None,
        language: str,
        use_itn: bool,
        keywords: str | None,
        expected: list[str] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> tuple[dict[str, Any], Any, None]:
        # The event skips Gradio's preprocessing: gr.File's (gradio/components/file.py,
        # `_process_single_file`, 6.31) leaves an empty NamedTemporaryFile(delete=False) in
        # the upload folder for every file. The other inputs get Gradio's own checks here.
        language = str(languages.preprocess(language))
        use_itn = bool(itn.preprocess(use_itn))
        keywords = keyword_field.preprocess(keywords)
        expected = [str(code) for code in expected_field.preprocess(list(expected or []))]
        paths = [str(file["path"]) for file in files or []]
        if not paths:
            raise refused(BadRequest("Choose some audio or video files first."), EVENT)
        if len(paths) > limit:
            many = f"A batch may hold at most {limit} files; this one has {len(paths)}."
            raise refused(BadRequest(many), EVENT)  # the wording of POST /api/batch
        try:
            options = options_of(language, use_itn, keywords, expected)
        except ServiceError as error:
            raise refused(error, EVENT) from error
        uploads = [read(path, transcriber) for path in paths]
        done = [0]
        progress((0, len(paths)), desc="Transcribing", unit="files")

        def one_done(index: int, outcome: TranscriptionResult | ServiceError) -> None:
            done[0] += 1
            progress((done[0], len(paths)), desc="Transcribing", unit="files")

        outcomes = await transcribe_many(transcriber, uploads, options, on_done=one_done)
        names = [Path(path).name for path in paths]
        pairs = list(zip(names, outcomes, strict=True))
        table = {"headers": RESULT_COLUMNS, "data": [row(name, o) for name, o in pairs]}
        finished = [(name, o.transcript) for name, o in pairs if isinstance(o, TranscriptionResult)]
        if not finished:
            return table, gr.DownloadButton(visible=False), None
        archive = gr.DownloadButton(value=str(write_zip(finished)), visible=True)
        return table, archive, None  # None: the files are gone, and so is their list

    files = gr.File(file_count="multiple", file_types=MEDIA_TYPES,
                    label="Audio or video files", elem_id="batch-files")  # fmt: skip
    with gr.Row():
        languages = language_dropdown()
        itn = itn_checkbox()
    with gr.Accordion("Keywords and languages", open=False):
        keyword_field = keywords_box()
        expected_field = languages_box()
    button = gr.Button("Transcribe all", variant="primary", elem_id="batch-transcribe")
    results = gr.Dataframe(headers=RESULT_COLUMNS, label="Results", wrap=True,
                           column_widths=RESULT_WIDTHS, elem_id="batch-results")  # fmt: skip
    archive = gr.DownloadButton("Download all (ZIP: TXT, SRT, VTT, JSON)", visible=False,
                                elem_id="batch-download")  # fmt: skip
    button.click(transcribe_all, [files, languages, itn, keyword_field, expected_field],
                 [results, archive, files],
                 preprocess=False, api_visibility="private")  # fmt: skip
    return files


def read(path: str, transcriber: Transcriber) -> bytes | ServiceError:
    try:
        check_size(os.path.getsize(path), transcriber.limits)
        return Path(path).read_bytes()
    except ServiceError as error:
        return error


def row(name: str, outcome: TranscriptionResult | ServiceError) -> list[Any]:
    if isinstance(outcome, ServiceError):
        return [name, "failed", "", "", outcome.message]
    transcript = outcome.transcript
    text = NO_SPEECH if transcript.no_speech else transcript.rich_text
    status = "from cache" if outcome.from_cache else "done"
    return [name, status, transcript.language, transcript.duration, text]
