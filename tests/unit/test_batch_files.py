"""The batch CLI's file rules (cli/files.py): one output per input, written whole or not at
all, and regular files only. Pure file-system code, tested on real files in a temporary
folder; the CLI end to end is in tests/e2e/test_batch_cli.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sensevoice_server.cli.files import (
    OutputCollision,
    find_audio,
    plan,
    read_input,
    remove_leftovers,
    split_done,
    write_output,
)


def touch(path: Path, data: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_inputs_that_share_a_stem_keep_their_suffix_and_the_others_keep_plain_names(
    tmp_path: Path,
) -> None:
    """The README's own example had en.wav, en.mp3... all written to en.srt, each over the
    last. Now each keeps its suffix; a stem used once keeps the name players look for."""
    folder = tmp_path / "in"
    for name in ("en.wav", "en.mp3", "en.m4a", "talk.wav", "nested/en.wav"):
        touch(folder / name)
    out = tmp_path / "out"
    jobs = plan(find_audio([folder]), [folder], out, ".srt")
    names = sorted(target.relative_to(out).as_posix() for _, target in jobs)
    assert names == ["en.m4a.srt", "en.mp3.srt", "en.wav.srt", "nested/en.srt", "talk.srt"]
    beside = plan(find_audio([folder]), [folder], None, ".srt")
    assert {target.name for _, target in beside} == {"en.m4a.srt", "en.mp3.srt", "en.wav.srt",
                                                     "en.srt", "talk.srt"}  # fmt: skip


def test_inputs_that_would_still_share_an_output_are_refused_before_any_work(
    tmp_path: Path,
) -> None:
    first, second = touch(tmp_path / "a" / "x.wav"), touch(tmp_path / "b" / "x.wav")
    with pytest.raises(OutputCollision, match=r"out/x\.wav\.srt <- .*a/x\.wav, .*b/x\.wav"):
        plan([first, second], [first, second], tmp_path / "out", ".srt")


def test_a_file_named_twice_is_one_input(tmp_path: Path) -> None:
    clip = touch(tmp_path / "in" / "en.wav")
    assert find_audio([tmp_path / "in", clip, tmp_path / "in"]) == [clip]


def test_the_skip_check_is_linear(tmp_path: Path) -> None:
    """It compared lists: 20,000 files of which none were done took minutes. One stat
    each now."""
    jobs = [(tmp_path / f"{i}.wav", tmp_path / f"{i}.srt") for i in range(20_000)]
    started = time.monotonic()
    todo, done = split_done(jobs, overwrite=False)
    assert (len(todo), len(done)) == (20_000, 0)
    assert time.monotonic() - started < 5


def test_an_output_is_written_whole_and_an_empty_or_temporary_file_is_not_done(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out" / "en.srt"
    write_output(target, "1\n00:00:00,000 --> 00:00:01,000\nhello")
    assert target.read_text().endswith("hello\n")
    assert [p.name for p in target.parent.iterdir()] == ["en.srt"]  # no temporary left
    empty = tmp_path / "out" / "ja.srt"
    empty.touch()  # what a run killed mid-write left before outputs were renamed into place
    leftover = tmp_path / "out" / ".ko.srt.0123abcd.part"
    leftover.write_text("1\n00:00")
    jobs = [(tmp_path / n, tmp_path / "out" / f"{n}.srt") for n in ("en", "ja", "ko")]
    todo, done = split_done(jobs, overwrite=False)
    assert [t.name for _, t in done] == ["en.srt"]
    assert [t.name for _, t in todo] == ["ja.srt", "ko.srt"]
    assert remove_leftovers([t for _, t in todo]) == 1
    assert not leftover.exists()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "en.srt"
    with pytest.raises(UnicodeEncodeError):  # fails midway through writing
        write_output(target, "hello \ud800 world\n")
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_and_a_device_are_refused_without_reading(tmp_path: Path) -> None:
    """A FIFO named x.wav blocked the batch CLI for ever; a symlink to /dev/zero was read
    until MemoryError. Both are refused by their type, at once."""
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    zero = tmp_path / "z.wav"
    zero.symlink_to("/dev/zero")
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"not a regular file \(a FIFO\)"):
        read_input(fifo, 1000)
    with pytest.raises(ValueError, match=r"not a regular file \(a character device\)"):
        read_input(zero, 1000)
    assert time.monotonic() - started < 1
    assert sorted(p.name for p in find_audio([tmp_path])) == ["x.wav", "z.wav"]  # reported


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = touch(tmp_path / "big.wav", b"\0" * 2000)
    assert read_input(big, 2000) == b"\0" * 2000
    with pytest.raises(ValueError, match="larger than the limit"):
        read_input(big, 1999)
