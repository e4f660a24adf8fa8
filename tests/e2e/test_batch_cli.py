"""The batch CLI as a new user runs it: the README's own example over samples/, a rerun, a
run killed midway, and files in the folder that are not files at all. Against the real
server (--url); the in-process runner shares every file rule (cli/files.py), and
tests/e2e/test_long_audio.py runs it too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from sensevoice_server.testing.servers import ROOT, AppProcess
from tests.support.samples import SAMPLES

AUDIO = sorted(p.name for p in SAMPLES.iterdir() if p.suffix not in (".py", ".md"))


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
