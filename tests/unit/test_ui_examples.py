"""The Transcribe tab's example clips (ui/examples.py): every sample WAV is an example, and
building them asks ffprobe nothing (it cost 0.4 s of every start), while any other file the
audio component shows is still checked by Gradio as before."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import gradio as gr
import pytest

from sensevoice_server.ui.examples import SAMPLES_DIR, example_clips


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file listing each ffprobe run, by an ffprobe first on PATH that notes its
    arguments and runs the real one."""
    calls = tmp_path / "ffprobe-calls"
    real = shutil.which("ffprobe")
    assert real
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ffprobe").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real} "$@"\n')
    (tools / "ffprobe").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_every_sample_clip_is_an_example_and_none_is_probed(probes: Path) -> None:
    with gr.Blocks():
        audio = gr.Audio(type="filepath")
        examples = example_clips(audio, gr.Dropdown(["auto"]), gr.Checkbox(value=True))
    assert examples is not None
    shown = sorted(name for name, *_ in examples.dataset.samples)
    assert shown == sorted(path.name for path in SAMPLES_DIR.glob("*.wav"))
    assert not probes.exists()


def test_any_other_file_is_still_checked_by_gradio(probes: Path, tmp_path: Path) -> None:
    with gr.Blocks():
        audio = gr.Audio(type="filepath")
        example_clips(audio, gr.Dropdown(["auto"]), gr.Checkbox(value=True))
    elsewhere = Path(shutil.copy(SAMPLES_DIR / "en.wav", tmp_path / "en.wav"))
    assert audio.postprocess(str(elsewhere))
    assert str(elsewhere) in probes.read_text()
