"""The core (settings -> cache -> engine -> Transcriber) runs without the web app around it:
the batch CLI and the benchmarks build it bare, and its life cycle is its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from sensevoice_server.core import build_transcriber
from sensevoice_server.errors import NotReady
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from tests.support.samples import EN, ROOT

CORE_ALONE = """
import asyncio, json, sys
from pathlib import Path
from sensevoice_server.core import build_transcriber
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings

transcriber = build_transcriber(Settings())
transcriber.start()
assert transcriber.wait_ready(120), transcriber.failure
result = asyncio.run(transcriber.transcribe(Path(sys.argv[1]).read_bytes(), DecodeOptions()))
transcriber.close(timeout=30)
web = sorted(name for name in sys.modules if name.split(".")[0] in ("gradio", "uvicorn")
             or name.startswith(("sensevoice_server.api", "sensevoice_server.ui"))
             or name == "sensevoice_server.app")
print(json.dumps({"text": result.transcript.raw_text, "web": web}))
"""


def test_the_core_transcribes_without_importing_any_web_framework(
    model_env: dict[str, str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CORE_ALONE, str(EN)],
        env={**os.environ, **model_env}, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["text"]
    # none of the web app: (fastapi itself is imported by funasr, which loads every one of its
    # submodules, its own demo server among them)
    assert answer["web"] == []


def test_the_transcriber_starts_drains_and_closes(settings: Settings) -> None:
    transcriber = build_transcriber(settings)
    assert not transcriber.ready and transcriber.readiness() == {"status": "loading"}
    transcriber.start()
    assert transcriber.wait_ready(120), transcriber.failure
    assert transcriber.ready and transcriber.failure is None
    assert transcriber.info()["device"] == "cpu"
    data = EN.read_bytes()
    assert asyncio.run(transcriber.transcribe(data, DecodeOptions())).transcript.raw_text

    transcriber.stop_accepting()  # a drain: nothing new comes in
    assert not transcriber.ready and transcriber.readiness() == {"status": "stopping"}
    with pytest.raises(NotReady):
        asyncio.run(transcriber.transcribe(data, DecodeOptions()))
    assert transcriber.wait_idle(5)
    transcriber.close(timeout=30)
    assert not any(thread.is_alive() for thread in transcriber.engine.workers.threads)
