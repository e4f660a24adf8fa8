"""The Gradio Blocks web UI, and the `/transcribe` endpoint gradio_client calls.

Three tabs: Transcribe (a file or a recording, transcribe.py), Several files (batch.py) and
Live (microphone captions, live.py); downloads.py writes the files they offer, legend.py
explains the emoji, uploads.py removes what the events have read. The UI only translates:
Gradio's inputs to a Transcriber call, its result back.
"""

from __future__ import annotations

import gradio as gr

from sensevoice_server.live import LiveSessions
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import Transcriber
from sensevoice_server.ui.examples import SAMPLES_DIR
from sensevoice_server.ui.live import build_live_tab
from sensevoice_server.ui.several_files import build_several_files_tab
from sensevoice_server.ui.transcribe import build_transcribe_tab
from sensevoice_server.ui.uploads import ServiceBlocks, delete_cache

__all__ = ["SAMPLES_DIR", "build_ui"]


def build_ui(
    transcriber: Transcriber, live_sessions: LiveSessions, settings: Settings
) -> gr.Blocks:
    blocks: ServiceBlocks
    ttl_s = settings.ui_upload_ttl_s
    queue = {"default_concurrency_limit": settings.ui_concurrency,
             "max_size": settings.ui_queue_size}  # fmt: skip
    with ServiceBlocks(
        title="SenseVoice transcription", delete_cache=delete_cache(ttl_s), queue=queue
    ) as blocks:
        gr.Markdown(
            "## SenseVoice transcription\n"
            "Speech to text in Chinese, English, Cantonese, Japanese and Korean, with the "
            "speaker's emotion and audio events (laughter, applause, music...)."
        )
        with gr.Tab("Transcribe"):
            build_transcribe_tab(transcriber, speakers=settings.speakers)
        with gr.Tab("Several files"):
            files = build_several_files_tab(transcriber, max_files=settings.max_batch_files)
            blocks.remove_once_read(files)
        with gr.Tab("Live"):
            build_live_tab(live_sessions, settings)
    return blocks
