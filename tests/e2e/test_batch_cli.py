"""The batch CLI as a new user runs it: the README's own example over samples/, a rerun, a
run killed midway, and files in the folder that are not files at all. Against the real
server (--url); the in-process runner shares every file rule (cli/files.py), and
tests/e2e/test_long_audio.py runs it too. And one clip in every format: the same bytes from
the API, the CLI (in-process and --url) and the web UI's downloads (formats.py)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sensevoice_server import formats
from sensevoice_server.cli.__main__ import main
from sensevoice_server.core import build_transcriber
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.servers import ROOT, AppProcess
from sensevoice_server.ui.downloads import write_downloads
from tests.support.samples import EN, SAMPLES

AUDIO = sorted(p.name for p in SAMPLES.iterdir() if p.suffix not in (".py", ".md"))
# app_server has speaker labels off: diarized_json is refused there (tests/unit/test_formats.py)
WITHOUT_SPEAKERS = [name for name, fmt in formats.FORMATS.items() if not fmt.needs_speakers]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensevoice_server.cli", "batch", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)  # fmt: skip


def counts(stderr: str) -> tuple[int, ...]:
    """(files, done, skipped, failed) from the summary table."""
    row = re.search(r"│\s+(\d+) │\s+(\d+) │\s+(\d+) │\s+(\d+) │", stderr)
    assert row, stderr
    return tuple(int(n) for n in row.groups())


def test_the_readme_example_writes_one_output_per_input_and_a_rerun_skips_them(
    app_server: AppProcess, tmp_path: Path
) -> None:
    """samples/ holds en.wav, en.mp3, en.m4a, en.ogg, en.flac and en.webm: all six went to
    en.srt, each over the last, while the run said 12 done. Now the six keep their suffix,
    every input has its own output, and a rerun skips all of them."""
    out = tmp_path / "transcripts"
    first = cli("samples", "--out", str(out), "--format", "srt", "--url", app_server.url,
                "--concurrency", "4")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert counts(first.stderr) == (12, 12, 0, 0)
    expected = sorted(
        name + ".srt" if name.startswith("en.") else name.rsplit(".", 1)[0] + ".srt"
        for name in AUDIO
    )
    assert sorted(p.name for p in out.iterdir()) == expected
    assert all(p.stat().st_size > 0 for p in out.iterdir())
    again = cli("samples", "--out", str(out), "--format", "srt", "--url", app_server.url)
    assert counts(again.stderr) == (12, 0, 12, 0)

    # A run killed mid-write leaves a temporary file (now) or an empty output (before
    # outputs were renamed into place): neither is taken for a finished output.
    (out / "en.wav.srt").unlink()
    leftover = out / ".en.wav.srt.0123abcd.part"
    leftover.write_text("1\n00:00:00,0")
    (out / "ja.srt").write_text("")
    resumed = cli("samples", "--out", str(out), "--format", "srt", "--url", app_server.url)
    assert counts(resumed.stderr) == (12, 2, 10, 0), resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == expected  # the leftover is gone
    assert (out / "ja.srt").stat().st_size > 0


def test_a_fifo_and_a_link_to_dev_zero_fail_at_once_and_the_rest_goes_on(
    app_server: AppProcess, tmp_path: Path
) -> None:
    """A FIFO named x.wav hung the run for ever; a symlink to /dev/zero was read until
    MemoryError. Each is now reported failed by what it is, without being read."""
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "x.wav")
    (folder / "z.wav").symlink_to("/dev/zero")
    (folder / "en.wav").write_bytes((SAMPLES / "en.wav").read_bytes())
    started = time.monotonic()
    done = cli(str(folder), "--out", str(tmp_path / "out"), "--url", app_server.url, timeout=120)
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stderr
    assert counts(done.stderr) == (3, 1, 0, 2)
    assert f"failed: {folder / 'x.wav'}: not a regular file (a FIFO)" in done.stderr
    assert f"failed: {folder / 'z.wav'}: not a regular file (a character device)" in done.stderr
    assert (tmp_path / "out" / "en.txt").stat().st_size > 0


def app_server_settings(tiny_model: Path, tiny_onnx: Path) -> Settings:
    """app_server's model settings (tests/e2e/conftest.py): the tiny export, onnx fp32."""
    return Settings(model=str(tiny_model), vad_model="silero-vad", device="cpu", ncpu=1,
                    backend="auto", onnx_dir=str(tiny_onnx), precision="fp32",
                    cache_url="none")  # fmt: skip


@pytest.fixture(scope="module")
def ui_files(tiny_model: Path, tiny_onnx: Path) -> dict[str, bytes]:
    """The web UI's download files of en.wav: its buttons are no API endpoint, so
    ui/downloads.py's own function, on the transcript the Transcribe tab would get (words
    timed) from a core built as app_server's is."""
    transcriber = build_transcriber(app_server_settings(tiny_model, tiny_onnx))
    transcriber.start()
    try:
        assert transcriber.wait_ready(120), transcriber.failure
        result = asyncio.run(
            transcriber.transcribe(EN.read_bytes(), DecodeOptions(word_timestamps=True))
        )
    finally:
        transcriber.close(60)
    return {name: path.read_bytes() for name, path in write_downloads(result.transcript).items()}


def test_one_clip_is_the_same_bytes_in_each_format_from_the_api_the_cli_and_the_ui(
    app_server: AppProcess, tiny_model: Path, tiny_onnx: Path, ui_files: dict[str, bytes],
    tmp_path: Path,
) -> None:  # fmt: skip
    """Formats were defined in four places that had drifted: HTTP text had no final newline
    and the file had one, the CLI's json was the native shape in-process and the native
    answer (with processing_ms) with --url, verbose_json was compact with from_cache over
    HTTP and indented without it in files, and the UI's JSON was the native shape. Now one
    table renders them all: each format's bytes are the same whichever way they are asked
    for (word times on everywhere, as the UI always has them)."""
    local = ["--model", str(tiny_model), "--vad-model", "silero-vad", "--device", "cpu",
             "--ncpu", "1", "--backend", "auto", "--onnx-dir", str(tiny_onnx),
             "--precision", "fp32", "--cache-url", "none"]  # fmt: skip
    for name in WITHOUT_SPEAKERS:
        answer = httpx.post(
            f"{app_server.url}/v1/audio/transcriptions",
            files={"file": ("en.wav", EN.read_bytes())}, timeout=120,
            data={"model": "whisper-1", "response_format": name,
                  "timestamp_granularities[]": ["word", "segment"]},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        flag = "txt" if name == "text" else name  # the CLI's own name for text, since its start
        common = [str(EN), "--format", flag, "--words"]
        remote = cli(*common, "--out", str(tmp_path / "url"), "--url", app_server.url)
        assert remote.returncode == 0, remote.stderr
        assert main(["batch", *common, "--out", str(tmp_path / "local"), *local]) == 0
        output = f"en{formats.FORMATS[name].suffix}"
        assert (tmp_path / "url" / output).read_bytes() == answer.content, name
        assert (tmp_path / "local" / output).read_bytes() == answer.content, name
        if name in ui_files:
            assert ui_files[name] == answer.content, name
    assert set(ui_files) == {"text", "srt", "vtt", "verbose_json"}
