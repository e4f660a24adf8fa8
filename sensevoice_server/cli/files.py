"""The batch CLI's side of the file system: which inputs, read how, outputs named and written how.

- Inputs are regular files only. A FIFO named `x.wav` would block its reader until some
  writer came, and `/dev/zero` (or a symlink to it) never ends: both are refused by their
  type, before they are opened, and one file over the size bound is refused by its size.
- An input's output is its stem plus the format's suffix (`talk.wav` -> `talk.srt`, beside
  it or under --out with the same relative path): players look for subtitles beside a
  video under that name. Inputs that would share one output (`en.wav` and `en.mp3` in one
  folder) each keep their own suffix instead: `en.wav.srt`, `en.mp3.srt`. Names depend on
  the inputs alone, so a rerun over the same inputs finds what the last run wrote. Inputs
  that would still collide (`a/x.wav` and `b/x.wav` named one by one with --out) are
  refused before any work, each clash named.
- Each output is written to a hidden temporary file in its folder, flushed to disk, then
  renamed into place (`os.replace` is atomic on POSIX): an output exists whole or not at
  all, so a rerun skips exactly what finished. A killed run leaves at most its temporary
  files, which are never taken for outputs and which the next run over them removes.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
from collections import Counter, defaultdict
from pathlib import Path

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".oga", ".flac",
                            ".webm", ".mp4", ".mkv", ".mov", ".wma", ".aiff", ".aif", ".amr",
                            ".3gp"})  # fmt: skip
PART = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.part$")  # a temporary output: .NAME.HEX.part
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}  # fmt: skip

Job = tuple[Path, Path]
"""An input and the output it is written to."""


class OutputCollision(Exception):
    """Inputs that would be written to the same output, whatever their names."""


def find_audio(paths: list[Path]) -> list[Path]:
    """Audio files among `paths`, folders searched recursively, each file once (a file named
    twice, or inside two folders named, is one input)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())  # fmt: skip
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            print(f"warning: {path}: no such file or folder", file=sys.stderr)
    seen: set[str] = set()
    unique = []
    for path in found:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def plan(sources: list[Path], paths: list[Path], out: Path | None, suffix: str) -> list[Job]:
    """Each input with its output (see the module's docstring for the naming rule).

    Raises OutputCollision when two inputs would still share an output.
    """
    folders = [folder_of(source, paths, out) for source in sources]
    shared = Counter((folder, source.stem) for folder, source in zip(folders, sources, strict=True))
    jobs = [
        (source, folder / ((source.stem if shared[folder, source.stem] == 1 else source.name)
                           + suffix))
        for folder, source in zip(folders, sources, strict=True)
    ]  # fmt: skip
    writers: defaultdict[Path, list[Path]] = defaultdict(list)
    for source, target in jobs:
        writers[target].append(source)
    clashes = {target: names for target, names in writers.items() if len(names) > 1}
    if clashes:
        lines = [
            f"  {target} <- " + ", ".join(map(str, names)) for target, names in clashes.items()
        ]
        raise OutputCollision(
            "these inputs would be written to the same output; pass their folder instead, or "
            "run them separately:\n" + "\n".join(lines)
        )
    return jobs


def folder_of(source: Path, paths: list[Path], out: Path | None) -> Path:
    """The folder an input's output goes to: beside it, or under `out` with its path
    relative to the first folder named that holds it."""
    if out is None:
        return source.parent
    roots = [p for p in paths if p.is_dir() and source.is_relative_to(p)]
    return out / source.relative_to(roots[0]).parent if roots else out


def split_done(jobs: list[Job], overwrite: bool) -> tuple[list[Job], list[Job]]:
    """(to do, already done), each in input order: one look per output, linear in the jobs."""
    todo: list[Job] = []
    done: list[Job] = []
    for job in jobs:
        (done if not overwrite and is_done(job[1]) else todo).append(job)
    return todo, done


def is_done(target: Path) -> bool:
    """A finished output: a regular file with something in it. Every output written here
    ends with a newline; an empty file is what an older run that was killed left behind."""
    try:
        info = target.stat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0


def read_input(path: Path, max_bytes: int) -> bytes:
    """The bytes of an input that is a regular file of at most `max_bytes`.

    Its type is checked before it is opened (opening a FIFO waits for a writer; some devices
    act when opened) and again on what was opened (fstat, without following a name that
    changed meanwhile); O_NONBLOCK keeps even that open from waiting.
    """
    kind = special_kind(os.stat(path).st_mode)
    if kind is None:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            kind = special_kind(info.st_mode)
            if kind is None:
                if info.st_size > max_bytes:
                    raise ValueError(f"larger than the limit of {max_bytes / 1e6:g} MB "
                                     "(--max-upload-mb)")  # fmt: skip
                data = file.read(max_bytes + 1)  # bounded, should the file grow meanwhile
                if len(data) > max_bytes:
                    raise ValueError(f"larger than the limit of {max_bytes / 1e6:g} MB")
                return data
    raise ValueError(f"not a regular file ({kind}): only audio files are read")


def special_kind(mode: int) -> str | None:
    """What a file that is not a regular one is, in words; None for a regular file."""
    return None if stat.S_ISREG(mode) else KINDS.get(stat.S_IFMT(mode), "not a regular file")


def write_output(target: Path, text: str) -> None:
    """Write `text` to `target` whole or not at all: a temporary file beside it, flushed to
    disk, then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not text.endswith("\n"):
        text += "\n"  # never an empty file: is_done() takes one for a leftover
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with temporary.open("x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_leftovers(targets: list[Path]) -> int:
    """Remove the temporary files a killed run left for these outputs; how many there were.

    One listing per output folder, so linear in the outputs. (Two runs writing the same
    outputs at the same time are not supported: one could remove the other's file.)
    """
    names: defaultdict[Path, set[str]] = defaultdict(set)
    for target in targets:
        names[target.parent].add(target.name)
    removed = 0
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # not there yet: nothing left in it
        for entry in entries:
            match = PART.match(entry.name)
            if match and match["name"] in wanted and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed
