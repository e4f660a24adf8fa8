"""Where models come from: the aliases agree with funasr's, a hub copy once found is found
again without modelscope, and the no-hub answer shows every way out that the README offers,
in commands that exist."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_server.model_source import (
    HUB_ALIASES,
    REQUIRED_FILES,
    HubCopies,
    ModelSource,
    unreachable,
)
from sensevoice_server.settings import Settings, flag


def test_hub_aliases_agree_with_funasrs_own() -> None:
    """A cached copy is found under the hub id funasr would download for an alias; if funasr
    renames one, a cached model would silently be looked for in the wrong place."""
    from funasr.download.name_maps_from_hub import name_maps_ms

    for alias, hub_id in HUB_ALIASES.items():
        assert name_maps_ms[alias] == hub_id, alias


def no_hub_message() -> str:
    remote = [ModelSource("model", "iic/SenseVoiceSmall", "iic/SenseVoiceSmall", "model hub"),
              ModelSource("vad_model", "fsmn-vad", "fsmn-vad", "model hub")]  # fmt: skip
    return unreachable(remote, "https://www.modelscope.cn: no answer within 5 s")


def test_the_no_hub_answer_names_three_ways_out() -> None:
    """A new user without internet access reads this paragraph and nothing else: it must
    offer local copies, the hub, and the README's way to try the service with no download."""
    message = no_hub_message()
    assert "iic/SenseVoiceSmall (--model) and fsmn-vad (--vad-model)" in message
    assert "Three ways out" in message
    assert "--model /path/to/SenseVoiceSmall --vad-model /path/to/fsmn-vad" in message
    assert "reach the hub" in message
    assert "--vad-model silero-vad" in message
    assert "python -m sensevoice_server.testing.checkpoint --size tiny" in message


def test_the_commands_the_no_hub_answer_gives_exist() -> None:
    message = no_hub_message()
    command = re.search(r"python -m (\S+) --size tiny (\S+?),", message)
    assert command, message
    module, directory = command.groups()
    assert importlib.util.find_spec(module) is not None, module
    then = re.search(r"start with (--model \S+ --vad-model \S+?)\.", message)
    assert then, message
    words = shlex.split(then.group(1))
    assert words[1] == directory
    assert {words[0], words[2]} == {flag(name) for name in ("model", "vad_model")}
    assert set(Settings.model_fields) >= {"model", "vad_model"}


def test_a_hub_copy_found_once_is_used_again_without_importing_modelscope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """modelscope imports torch (about 540 MB) just to say where its cache keeps a model, so
    the answer is remembered: a later start finds the copy with neither. A remembered copy
    that is no longer whole is asked of modelscope again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope"))
    copy = tmp_path / "modelscope" / "models" / "iic" / "SenseVoiceSmall"
    copy.mkdir(parents=True)
    for name in REQUIRED_FILES:
        (copy / name).write_text("x")
    HubCopies().put("iic/SenseVoiceSmall", str(copy))
    probe = (
        "import sys; from sensevoice_server.model_source import cached_copy; "
        "print(cached_copy('iic/SenseVoiceSmall')); print('modelscope' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60, check=True)  # fmt: skip
    assert done.stdout.split() == [str(copy), "False"]
    (copy / "model.pt").unlink()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60, check=True)  # fmt: skip
    assert done.stdout.split()[-1] == "True"
