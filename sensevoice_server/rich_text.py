"""funasr's own `rich_transcription_postprocess` (SenseVoice's tags as emoji), without
importing funasr.

The function lives in `funasr/utils/postprocess_utils.py`, a module that needs nothing but
the standard library; but `import funasr...` runs funasr's package `__init__`, which imports
torch (about 540 MB resident and seconds of start-up) and funasr's model registry. A CPU
server on onnxruntime needs neither, so this loads that one file by its path, as a module of
its own: funasr's code, not a copy of it. Where funasr is not installed it falls back to the
ordinary import, which then fails with funasr's own message.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


@functools.cache
def _postprocess_module() -> Any:
    package = importlib.util.find_spec("funasr")  # finds it without running its __init__
    if package is None or not package.submodule_search_locations:
        import funasr.utils.postprocess_utils as imported

        return imported
    path = Path(next(iter(package.submodule_search_locations))) / "utils" / "postprocess_utils.py"
    spec = importlib.util.spec_from_file_location("_funasr_postprocess_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rich_transcription_postprocess(raw: str) -> str:
    """SenseVoice's tagged text with its emotion and event tags as emoji, as funasr writes it."""
    render: Callable[[str], str] = _postprocess_module().rich_transcription_postprocess
    return render(raw)
