"""The Transcribe tab: a file, a video's sound track (video.py) or a recording in; the rich
transcript, its segments and the transcript as TXT, SRT, VTT and JSON out. Its button is also
the `/transcribe` endpoint that gradio_client calls: (audio, language, ITN) -> (text, segment
table). A user's mistake (no audio, an empty, corrupt or too long file) is answered with the
API's message and one log line (refusals.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from sensevoice_server.audio import check_size
from sensevoice_server.errors import BadRequest, ServiceError
from sensevoice_server.options import (
    LANGUAGE_NAMES,
    LANGUAGES,
    DecodeOptions,
    checked_keywords,
    checked_languages,
    listed,
)
from sensevoice_server.transcriber import Transcriber, TranscriptionResult
from sensevoice_server.ui.downloads import button_updates, download_buttons
from sensevoice_server.ui.examples import example_clips
from sensevoice_server.ui.legend import legend_markdown
from sensevoice_server.ui.refusals import refused
from sensevoice_server.ui.video import sound_of, video_input

SEGMENT_COLUMNS = ["start", "end", "language", "emotion", "events", "text"]
# Without widths, the table gave the short columns a few letters each ("st/ar/t") and the
# text a line that ran off-screen. The short columns get room for their header and longest
# value on one line ("1234.567", "surprised"; events wrap after a comma) in the table's 14 px
# monospace font; the text a share of the table that fits beside them once Gradio's page
# is 960 px wide (a window of 1024 px or more), wrapped at words (`wrap=True`). A narrower
# table scrolls sideways rather than break a word or a number.
SEGMENT_WIDTHS: list[str | int] = ["90px", "90px", "90px", "100px", "100px", "50%"]
SPEAKER_WIDTHS: list[str | int] = [*SEGMENT_WIDTHS[:-1], "42%", "80px"]
NO_AUDIO = "Upload or record some audio (or choose a video) first."
NO_SPEECH = "No speech detected"
ITN_LABEL = "Inverse text normalisation (ITN)"
ITN_INFO = "Writes numbers, dates and punctuation as text is written: “twenty five” → 25."
LANGUAGE_CHOICES = [(LANGUAGE_NAMES[code], code) for code in LANGUAGES if code != "nospeech"]


def language_dropdown() -> gr.Dropdown:
    return gr.Dropdown(LANGUAGE_CHOICES, value="auto", label="Language")


def itn_checkbox() -> gr.Checkbox:
    return gr.Checkbox(value=True, label=ITN_LABEL, info=ITN_INFO)


def keywords_box() -> gr.Textbox:
    return gr.Textbox(
        value="", label="Keywords", lines=2,
        placeholder="Names and terms, one per line or comma",
        info="Favoured while decoding (a beam search: a little slower).",
    )  # fmt: skip


def languages_box() -> gr.CheckboxGroup:
    return gr.CheckboxGroup(
        [choice for choice in LANGUAGE_CHOICES if choice[1] != "auto"], value=[],
        label="Expected languages", info="With Detect automatically: choose among these only.",
    )  # fmt: skip


def options_of(
    language: str, use_itn: bool, keywords: str | None, languages: list[str] | None
) -> DecodeOptions:
    """What the UI's fields ask for (words always timed: the SRT and VTT downloads need
    them to be readable); a keyword list out of bounds raises BadRequest."""
    return DecodeOptions(
        language=language, use_itn=use_itn, word_timestamps=True,
        keywords=checked_keywords(listed(keywords or "")),
        languages=checked_languages(languages or []),
    )  # fmt: skip


def build_transcribe_tab(transcriber: Transcriber, *, speakers: bool) -> None:
    """Add the tab's components and events to the gr.Blocks being built."""

    async def transcribe(
        audio_path: str | None,
        language: str,
        use_itn: bool,
        keywords: str = "",
        languages: list[str] | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> tuple[str, dict[str, Any], TranscriptionResult]:
        if not audio_path:
            raise refused(BadRequest(NO_AUDIO), "transcribe")
        try:
            check_size(os.path.getsize(audio_path), transcriber.limits)
            data = Path(audio_path).read_bytes()
            options = options_of(language, use_itn, keywords, languages)
            result = await transcriber.transcribe(
                data, options,
                progress=lambda done, total: progress((done, total), desc="Transcribing",
                                                      unit="segments"),
            )  # fmt: skip
        except ServiceError as error:
            raise refused(error, "transcribe") from error
        return shown_text(result), segment_table(result, speakers), result

    with gr.Row():
        with gr.Column():
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="audio"
            )
            video = video_input()
            language = language_dropdown()
            use_itn = itn_checkbox()
            with gr.Accordion("Keywords and languages", open=False):
                keywords = keywords_box()
                languages = languages_box()
            button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        with gr.Column():
            rich = gr.Textbox(label="Transcript", lines=8, buttons=["copy"], elem_id="transcript")
            timings = gr.Markdown(elem_id="timings")
            with gr.Row():
                downloads = download_buttons("download")
    columns = [*SEGMENT_COLUMNS, "speaker"] if speakers else SEGMENT_COLUMNS
    widths = SPEAKER_WIDTHS if speakers else SEGMENT_WIDTHS
    table = gr.Dataframe(headers=columns, label="Segments", wrap=True, column_widths=widths,
                         elem_id="segments")  # fmt: skip
    with gr.Accordion("What the emoji mean", open=False, elem_id="legend"):
        gr.Markdown(legend_markdown())
    example_clips(audio, language, use_itn)
    video.upload(sound_of, [video], [audio, video], preprocess=False, api_visibility="private")
    last = gr.State()
    button.click(
        transcribe,
        [audio, language, use_itn, keywords, languages],
        [rich, table, last],
        api_name="transcribe",
    ).then(describe, [last], [timings], api_visibility="private").then(
        offer_downloads, [last, audio], downloads, api_visibility="private"
    )


def shown_text(result: TranscriptionResult) -> str:
    transcript = result.transcript
    return NO_SPEECH if transcript.no_speech else transcript.rich_text


def segment_table(result: TranscriptionResult, speakers: bool = False) -> dict[str, Any]:
    rows = []
    for s in result.transcript.segments:
        if not s.text:
            continue
        row: list[Any] = [s.start, s.end, s.language, s.emotion, ", ".join(s.events), s.text]
        if speakers:
            row.append(f"S{s.speaker + 1}" if s.speaker is not None else "")
        rows.append(row)
    headers = [*SEGMENT_COLUMNS, "speaker"] if speakers else SEGMENT_COLUMNS
    return {"headers": headers, "data": rows}


def offer_downloads(result: TranscriptionResult | None, audio_path: str | None) -> list[Any]:
    stem = Path(audio_path).stem if audio_path else "transcript"
    return button_updates(result.transcript if result else None, stem)


def describe(result: TranscriptionResult | None) -> str:
    if result is None:
        return ""
    transcript = result.transcript
    if result.from_cache:
        timing = f"⚡ **from cache** in {result.processing_ms:.0f} ms"
    else:
        timing = f"**processing** {result.processing_ms / 1000:.2f} s"
        timing += f" (model {result.inference_ms / 1000:.2f} s)"
    spoken = "no speech" if transcript.no_speech else transcript.language
    return f"**Audio** {transcript.duration:.1f} s · **language** {spoken} · {timing}"
