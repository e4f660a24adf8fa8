"""The Transcribe tab's video input: a video's sound track handed to the Audio component.

The HTTP API transcribes any container FFmpeg reads, a video by its sound track; gr.Audio's
upload area refuses a video in the browser, with its fixed list of audio MIME types (set in
Gradio's front end, 6.31, not a parameter). This input takes videos; its upload event puts
the video's sound into the Audio component, which plays it, and the Transcribe button then
transcribes it as it does any upload. The upload route (api/gradio_uploads.py) has sniffed
the file on its way in: a video without a sound track, or a file that is not media at all,
was refused there (415).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder

# "video" is every video/* MIME type the browser knows; the suffixes cover systems that map
# a container to no MIME type (or to an application/* one), which the browser would refuse
VIDEO_TYPES = ["video", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv",
               ".mpg", ".mpeg", ".ts", ".mts", ".3gp", ".ogv"]  # fmt: skip
MEDIA_TYPES = ["audio", *VIDEO_TYPES]  # what the API takes; audio dropped here is welcome too
VIDEO_LABEL = "…or a video: its sound track is transcribed"


def video_input() -> gr.File:
    return gr.File(label=VIDEO_LABEL, file_types=MEDIA_TYPES, height=120, elem_id="video")


def sound_of(video: dict[str, Any] | None) -> tuple[Any, None]:
    """The upload event: (the Audio component's new value, the video input cleared).

    It runs without Gradio's preprocessing (as the Several files tab's event does): gr.File's
    leaves an empty temporary file behind for every upload (ui/several_files.py says where).
    """
    if not video:
        return gr.skip(), None
    return playable(str(video["path"])), None


def playable(path: str) -> str:
    """`path` where browsers play its sound track as it is (an MP4 with AAC, a WebM with
    Opus), else that track copied (or re-encoded, where no browser plays its codec) into a
    file they do play: Gradio's own conversion, which gr.Audio would otherwise run on this
    output with a UserWarning in the log. A copied track decodes to the very samples the
    API decodes from the video."""
    if not processing_utils.ffmpeg_installed() or processing_utils.audio_is_playable(path):
        return path
    converted: str = processing_utils.convert_audio_to_playable(path, get_upload_folder())
    return converted
