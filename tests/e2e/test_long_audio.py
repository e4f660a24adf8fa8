"""A 224 s clip through the clients people use: the OpenAI SDK's words and its stream
iterator, subtitles within their limits from the API and the batch CLI, and the batch CLI
over a folder of mixed formats with one corrupt file, in-process and against the server."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from samples.make_samples import make_long_clip
from sensevoice_server.testing.servers import ROOT, AppProcess, run_app
from tests.support.cues import LIMIT_S, assert_cues_within_limits
from tests.support.samples import SAMPLES


@pytest.fixture(scope="module")
def clip224(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_long_clip(224, tmp_path_factory.mktemp("long") / "talk.wav")


@pytest.fixture(scope="module")
def long_app(model_env: dict[str, str], tmp_path_factory) -> Iterator[AppProcess]:
    env = {**model_env, "SENSEVOICE_MAX_DURATION_S": "600", "SENSEVOICE_MAX_UPLOAD_MB": "20"}
    with run_app(env, tmp_path_factory.mktemp("long-app")) as app:
        yield app


@pytest.fixture(scope="module")
def sdk(long_app: AppProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{long_app.url}/v1", api_key="unused", max_retries=0,
                         timeout=300)  # fmt: skip


def test_the_sdk_gets_ordered_words_inside_their_segments(
    sdk: openai.OpenAI, clip224: Path
) -> None:
    with clip224.open("rb") as audio:
        verbose = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )  # fmt: skip
    words, segments = verbose.words, verbose.segments
    assert words and segments and verbose.duration == pytest.approx(224, abs=0.01)
    assert all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert all(w.start >= 0 and w.end <= verbose.duration for w in words)
    for segment in segments:
        inside = [w for w in words if segment.start <= w.start < segment.end]
        assert inside and all(w.end <= segment.end for w in inside)
    assert "".join(w.word for w in words) == "".join(verbose.text.split())


def test_the_sdk_stream_iterator_yields_deltas_and_done(sdk: openai.OpenAI, clip224: Path) -> None:
    with clip224.open("rb") as audio:
        events = list(sdk.audio.transcriptions.create(model="whisper-1", file=audio, stream=True))
    kinds = [event.type for event in events]
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.delta") > 5
    text = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert text == events[-1].text


@pytest.mark.parametrize("response_format", ["srt", "vtt"])
def test_api_subtitles_keep_within_the_cue_limits(
    sdk: openai.OpenAI, clip224: Path, response_format: str
) -> None:
    with clip224.open("rb") as audio:
        subtitles = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format=response_format
        )
    assert assert_cues_within_limits(subtitles) > 224 / LIMIT_S


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensevoice_server.cli", "batch", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path, clip224: Path) -> Path:
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    shutil.copy(clip224, inputs / "talk.wav")
    for name in ("en.mp3", "zh.wav", "ja.wav"):
        shutil.copy(SAMPLES / name, inputs / "nested" / name)
    shutil.copy(SAMPLES / "en.ogg", inputs / "en.ogg")
    (inputs / "nested" / "broken.wav").write_bytes(b"RIFF" + b"\0" * 500)
    (inputs / "notes.txt").write_text("not audio, and not picked up")
    return inputs


@pytest.mark.parametrize("where", ["in-process", "server"])
def test_cli_batch_over_a_folder_with_a_corrupt_file(
    folder: Path, tmp_path: Path, long_app: AppProcess, model_env: dict[str, str], where: str
) -> None:
    out = tmp_path / "out"
    target = (["--url", long_app.url] if where == "server" else
              ["--model", model_env["SENSEVOICE_MODEL"], "--vad-model", "silero-vad",
               "--backend", "torch", "--cache-url", "none"])  # fmt: skip
    done = cli(str(folder), "--out", str(out), "--format", "srt", *target)
    assert done.returncode == 1, done.stderr
    assert f"failed: {folder / 'nested' / 'broken.wav'}: " in done.stderr
    assert "could not be decoded as audio" in done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.srt"))
    assert written == ["en.srt", "nested/en.srt", "nested/ja.srt", "nested/zh.srt", "talk.srt"]
    assert assert_cues_within_limits((out / "talk.srt").read_text()) > 224 / LIMIT_S
    if where == "in-process":
        return  # resuming is the same code either way (cli/batch.py): run it once, below
    again = cli(str(folder), "--out", str(out), "--format", "srt", *target)
    assert again.returncode == 1  # the corrupt file still fails...
    assert re.search(r"│\s+6 │\s+0 │\s+5 │\s+1 │", again.stderr), again.stderr  # ...the rest skip
