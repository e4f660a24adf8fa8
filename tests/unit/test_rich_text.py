"""funasr's `rich_transcription_postprocess`, loaded without importing funasr (rich_text.py):
the same function, so the same emoji, and no torch in a process that only renders text."""

from __future__ import annotations

import subprocess
import sys

from funasr.utils.postprocess_utils import rich_transcription_postprocess as funasrs

from sensevoice_server.rich_text import rich_transcription_postprocess
from sensevoice_server.transcript import EMOTION_TAGS, EVENT_TAGS

TEXTS = ["hello there.", "你好。", "", "x y z"]


def test_every_tag_renders_as_funasrs_own_function_renders_it() -> None:
    tagged = [
        f"<|{language}|><|{emotion}|><|{event}|><|withitn|>{text}"
        for language in ("en", "zh", "nospeech")
        for emotion in [*EMOTION_TAGS, "NEUTRAL", "EMO_UNKNOWN"]
        for event in [*EVENT_TAGS, "Speech"]
        for text in TEXTS
    ]
    joined = "<|en|><|SAD|><|BGM|><|woitn|>one <|zh|><|HAPPY|><|Speech|><|withitn|>二"
    for raw in [*tagged, joined]:
        assert rich_transcription_postprocess(raw) == funasrs(raw), raw


def test_rendering_imports_neither_funasr_nor_torch() -> None:
    code = (
        "import sys\n"
        "from sensevoice_server.rich_text import rich_transcription_postprocess as r\n"
        "assert r('<|en|><|HAPPY|><|Speech|><|withitn|>hi') == 'hi😊'\n"
        "print(sorted(m for m in ('torch', 'funasr') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
