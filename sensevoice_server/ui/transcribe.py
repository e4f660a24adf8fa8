"""The Transcribe tab: a file or a recording in, the rich transcript and its segments out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from sensevoice_server.audio import check_size
from sensevoice_server.errors import ServiceError
from sensevoice_server.options import LANGUAGES, DecodeOptions
from sensevoice_server.service import Transcriber, TranscriptionResult

SAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "samples"
SEGMENT_COLUMNS = ["start", "end", "language", "emotion", "events", "text"]


def build_transcribe_tab(transcriber: Transcriber) -> None:
    """Add the tab's components and events to the gr.Blocks being built."""

    async def transcribe(
        audio_path: str | None,
        language: str,
        use_itn: bool,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> tuple[str, dict[str, Any], TranscriptionResult]:
        if not audio_path:
            raise gr.Error("Upload or record some audio first.")
        try:
            check_size(os.path.getsize(audio_path), transcriber.limits)
            data = Path(audio_path).read_bytes()
            result = await transcriber.transcribe(
                data,
                DecodeOptions(language=language, use_itn=use_itn),
                progress=lambda done, total: progress(
                    (done, total), desc="Transcribing", unit="segments"
                ),
            )
        except ServiceError as error:
            raise gr.Error(error.message) from error
        return result.transcript.rich_text, segment_table(result), result

    with gr.Row():
        with gr.Column():
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="audio"
            )
            language = gr.Dropdown(list(LANGUAGES), value="auto", label="Language")
            use_itn = gr.Checkbox(
                value=True, label="Inverse text normalisation (punctuation, numbers)"
            )
            button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        with gr.Column():
            rich = gr.Textbox(label="Transcript", lines=8, buttons=["copy"], elem_id="transcript")
            timings = gr.Markdown(elem_id="timings")
    table = gr.Dataframe(
        headers=SEGMENT_COLUMNS,
        label="Segments",
        wrap=True,
        column_widths=["8%", "8%", "9%", "9%", "11%", "55%"],
        elem_id="segments",
    )
    examples = sorted(str(p) for p in SAMPLES_DIR.glob("*.wav"))
    if examples:
        gr.Examples(
            examples=[[path, "auto", True] for path in examples],
            inputs=[audio, language, use_itn],
            label="Example clips",
        )
    last = gr.State()
    button.click(
        transcribe, [audio, language, use_itn], [rich, table, last], api_name="transcribe"
    ).then(describe, [last], [timings], api_visibility="private")


def segment_table(result: TranscriptionResult) -> dict[str, Any]:
    rows = [
        [s.start, s.end, s.language, s.emotion, ", ".join(s.events), s.text]
        for s in result.transcript.segments
    ]
    return {"headers": SEGMENT_COLUMNS, "data": rows}


def describe(result: TranscriptionResult | None) -> str:
    if result is None:
        return ""
    transcript = result.transcript
    timing = f"**processing** {result.processing_ms / 1000:.2f} s"
    if result.from_cache:
        timing = f"⚡ **from cache** in {result.processing_ms:.0f} ms"
    else:
        timing += f" (model {result.inference_ms / 1000:.2f} s)"
    return f"**Audio** {transcript.duration:.1f} s · **language** {transcript.language} · {timing}"
