"""funasr's own `rich_transcription_postprocess` (SenseVoice's tags as emoji), without
importing funasr.

The function lives in `funasr/utils/postprocess_utils.py`, a module that needs nothing but
the standard library; but `import funasr...` runs funasr's package `__init__`, which imports
torch (about 540 MB resident and seconds of start-up) and funasr's model registry. A CPU
server on onnxruntime needs neither, so that one file is loaded by its path, as a module of
its own (library_source.py): funasr's code, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable

from sensevoice_server.library_source import library_module


def rich_transcription_postprocess(raw: str) -> str:
    """SenseVoice's tagged text with its emotion and event tags as emoji, as funasr writes it."""
    module = library_module("funasr", "utils/postprocess_utils.py")
    render: Callable[[str], str] = module.rich_transcription_postprocess
    return render(raw)
