"""`python -m sensevoice_server.cli corpus INPUT... --out DIR`: label a speech corpus.

INPUT is audio files, folders (searched recursively) or text files listing paths (one per
line, relative to the list's folder). The model runs in this process and loads once. DIR
gets a manifest people can train on: files.jsonl (path, sha256, status, error, duration,
language: one row per input file) and segments.jsonl (sha256, path, start, end, text with
SenseVoice's emotion and event marks, plain_text, language, emotion, events, and words or
speaker when asked for). Work is keyed by content: a rerun does nothing for files already
done, a new or changed file is transcribed, two paths with the same bytes are transcribed
once and both listed, a file that failed is tried again only with --retry-failed. Rows are
appended as each file finishes; a crash loses the file in flight, and the rerun finishes
the job (sensevoice_server/corpus_manifest.py). --shard i/N takes the i-th of N parts of
the inputs (by a hash of each path), to split a corpus over machines by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensevoice_server.cli.batch import (
    FILE_LIMIT_MB,
    add_app_arguments,
    add_decode_arguments,
    biasing_of,
    started_transcriber,
)
from sensevoice_server.cli.files import find_audio, read_input
from sensevoice_server.corpus_manifest import Manifest
from sensevoice_server.errors import BadRequest, ServiceError
from sensevoice_server.options import DecodeOptions
from sensevoice_server.transcript import Transcript

if TYPE_CHECKING:
    from sensevoice_server.transcriber import Transcriber

LIST_SUFFIXES = (".txt", ".lst")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    corpus = commands.add_parser(
        "corpus", help="label a corpus: a resumable manifest of files and segments (JSONL)",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    corpus.add_argument("inputs", nargs="+", type=Path,
                        help="audio files, folders, or .txt/.lst files listing paths")  # fmt: skip
    corpus.add_argument("--out", type=Path, required=True, help="the manifest's folder")
    corpus.add_argument("--retry-failed", action="store_true", help="try failed files again")
    corpus.add_argument("--shard", type=shard, default=(1, 1), metavar="I/N",
                        help="take the I-th of N parts of the inputs (1/1: all)")  # fmt: skip
    corpus.add_argument("--words", action="store_true", help="word times in segment rows")
    add_decode_arguments(corpus)
    add_app_arguments(corpus)
    corpus.set_defaults(run=run)


def shard(text: str) -> tuple[int, int]:
    part, _, count = text.partition("/")
    try:
        index, total = int(part), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 2/4") from None
    if not 1 <= index <= total:
        raise argparse.ArgumentTypeError(f"{text!r}: I must be from 1 to N")
    return index, total


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    try:
        keywords, languages = biasing_of(args)
    except (OSError, UnicodeDecodeError, BadRequest) as error:
        print(f"error: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    paths = in_shard(listed_inputs(args.inputs), *args.shard)
    if not paths:
        print("error: no audio files found in the inputs", file=sys.stderr)
        return 2
    options = DecodeOptions(args.language, not args.no_itn, word_timestamps=args.words,
                            keywords=keywords, languages=languages)  # fmt: skip
    manifest = Manifest.open(args.out)
    counts = asyncio.run(label_all(paths, manifest, options, args))
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    print(f"{len(paths)} files: {summary}; manifest in {args.out}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def listed_inputs(inputs: list[Path]) -> list[Path]:
    """Audio files of the inputs: list files read (their paths relative to the list's
    folder), folders searched; each file once."""
    named: list[Path] = []
    for given in inputs:
        if given.is_file() and given.suffix.lower() in LIST_SUFFIXES:
            lines = given.read_text(encoding="utf-8").splitlines()
            named += [given.parent / line.strip() for line in lines if line.strip()]
        else:
            named.append(given)
    return find_audio(named)


def in_shard(paths: list[Path], index: int, total: int) -> list[Path]:
    """The paths of part `index` of `total`: chosen by a hash of each path, so a part keeps
    its files when others are added."""
    if total == 1:
        return paths
    return [path for path in paths if path_hash(path) % total == index - 1]


def path_hash(path: Path) -> int:
    return int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16)


async def label_all(
    paths: list[Path], manifest: Manifest, options: DecodeOptions, args: argparse.Namespace
) -> Counter[str]:
    counts: Counter[str] = Counter()
    transcriber: Transcriber | None = None
    max_bytes = int(FILE_LIMIT_MB * 1024 * 1024)
    started = time.monotonic()
    try:
        for number, path in enumerate(paths, 1):
            try:
                data = await asyncio.to_thread(read_input, path, max_bytes)
            except (OSError, ServiceError) as error:  # unreadable: listed once, no sha256
                if (str(path), "") in manifest.listed and not args.retry_failed:
                    counts["skipped"] += 1
                else:
                    manifest.add(failed_row(path, "", error), [])
                    counts["failed"] += 1
                continue
            sha = hashlib.sha256(data).hexdigest()
            kind = plan(manifest, str(path), sha, args.retry_failed)
            if kind == "transcribe":
                transcriber = transcriber or await started_transcriber(args, needs_speakers=False)
                kind = await transcribe(transcriber, manifest, path, sha, data, options)
            elif kind in ("duplicate", "failed before"):
                known = manifest.done.get(sha) or manifest.failed[sha]
                manifest.add({**known, "path": str(path)}, [])
            counts[kind] += 1
            rate = number / max(time.monotonic() - started, 1e-9)
            print(f"[{number}/{len(paths)}] {path}: {kind} ({rate:.1f} files/s)", file=sys.stderr)
    finally:
        if transcriber is not None:
            await asyncio.to_thread(transcriber.close, 60)
    return counts


def plan(manifest: Manifest, path: str, sha: str, retry_failed: bool) -> str:
    """What a file needs: nothing (listed and settled), a row (its bytes are known), or
    transcribing."""
    if sha in manifest.done:
        return "skipped" if (path, sha) in manifest.listed else "duplicate"
    if sha in manifest.failed and not retry_failed:
        return "skipped" if (path, sha) in manifest.listed else "failed before"
    return "transcribe"


async def transcribe(
    transcriber: Transcriber, manifest: Manifest, path: Path, sha: str, data: bytes,
    options: DecodeOptions,
) -> str:  # fmt: skip
    try:
        result = await transcriber.transcribe(data, options)
    except ServiceError as error:
        manifest.add(failed_row(path, sha, error), [])
        return "failed"
    transcript = result.transcript
    file_row = {"path": str(path), "sha256": sha, "status": "done", "error": None,
                "duration": transcript.duration, "language": transcript.language}  # fmt: skip
    manifest.add(file_row, segment_rows(transcript, str(path), sha))
    return "transcribed"


def failed_row(path: Path, sha: str, error: Exception) -> dict[str, Any]:
    message = error.message if isinstance(error, ServiceError) else str(error)
    return {"path": str(path), "sha256": sha, "status": "failed", "error": message,
            "duration": None, "language": None}  # fmt: skip


def segment_rows(transcript: Transcript, path: str, sha: str) -> list[dict[str, Any]]:
    rows = []
    for segment in transcript.segments:
        row: dict[str, Any] = {
            "sha256": sha, "path": path, "start": segment.start, "end": segment.end,
            "text": segment.rich, "plain_text": segment.text, "language": segment.language,
            "emotion": segment.emotion, "events": segment.events,
        }  # fmt: skip
        if segment.words:
            row["words"] = [{"word": w.word, "start": w.start, "end": w.end}
                            for w in segment.words]  # fmt: skip
        if segment.speaker is not None:
            row["speaker"] = segment.speaker
        rows.append(row)
    return rows
