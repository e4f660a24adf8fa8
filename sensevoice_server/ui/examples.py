"""The Transcribe tab's example clips: the samples/ folder's WAV files, a click away.

Gradio asks ffprobe whether each file an Audio component shows plays in a browser, and
`gr.Examples` shows every example when the UI is built: seven clips at 57 ms each were
0.4 s of every start, about a tenth of the time to ready. The clips are this project's own
16-bit PCM WAV files (samples/make_samples.py writes them), which every browser plays, so
they are shown as they are. That needs the one component's `postprocess` wrapped: a
subclass of gr.Audio would do it too, but Gradio writes a .pyi stub beside the module of
every component class defined, which fails where the package is installed read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.helpers import Examples

from sensevoice_server.options import LANGUAGE_NAMES

SAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "samples"


def example_clips(audio: gr.Audio, language: gr.Dropdown, use_itn: gr.Checkbox) -> Examples | None:
    """Each sample clip, with the language on auto and ITN on, as an example row."""
    rows = [(str(path), "auto", True) for path in sorted(SAMPLES_DIR.glob("*.wav"))]
    if not rows:
        return None
    audio.postprocess = samples_as_they_are(audio.postprocess)  # type: ignore[method-assign,assignment]
    examples: Examples = gr.Examples(  # gr.Examples: Examples(...).create()
        examples=[list(row) for row in rows],
        inputs=[audio, language, use_itn],
        label="Example clips",
        # Gradio would show the values ("auto", "true"): say what they mean instead
        example_labels=[example_label(*row) for row in rows],
    )
    return examples


def example_label(path: str, language: str, use_itn: bool) -> str:
    return f"{Path(path).name} · {LANGUAGE_NAMES[language]} · ITN {'on' if use_itn else 'off'}"


def samples_as_they_are(postprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`postprocess` with the sample clips passed through unprobed."""

    def shown(value: Any) -> Any:
        if isinstance(value, str | Path) and is_sample(Path(value)):
            return FileData(path=str(value), orig_name=Path(value).name)
        return postprocess(value)

    return shown


def is_sample(path: Path) -> bool:
    return path.suffix == ".wav" and path.resolve().parent == SAMPLES_DIR
