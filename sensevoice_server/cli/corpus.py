"""`python -m sensevoice_server.cli corpus INPUT... --out DIR`: label a speech corpus.

INPUT is audio files, folders (searched recursively) or text files listing paths (one per
line, relative to the list's folder). The model runs in this process and loads once, or
on a running server (--url: its cache and queue apply), or on a Ray cluster (--ray: an
actor pool, each actor one engine; sensevoice_server/cli/corpus_ray.py), with the same rows.
DIR gets a manifest people can train on: files.jsonl (path, sha256, status, error,
duration, language: one row per input file) and segments.jsonl (sha256, path, start, end,
text with SenseVoice's emotion and event marks, plain_text, language, emotion, events, and
words or speaker when asked for), or the same columns as Parquet shards (--format
parquet). Work is keyed by content: a rerun does nothing for files already
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
import importlib.util
import logging
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sensevoice_server.cli.batch import (
    FILE_LIMIT_MB,
    add_app_arguments,
    add_decode_arguments,
    biasing_of,
    started_transcriber,
)
from sensevoice_server.cli.files import find_audio, read_input
from sensevoice_server.cli.stream import add_server_arguments
from sensevoice_server.corpus_manifest import FORMATS, Manifest
from sensevoice_server.corpus_rows import (
    Tally,
    done_row,
    failed_row,
    known_row,
    plan,
    read_error,
    segment_rows,
)
from sensevoice_server.errors import BadRequest, ServiceError, StartupError
from sensevoice_server.options import DecodeOptions

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
    corpus.add_argument("--format", choices=FORMATS, default="jsonl",
                        help="rows as JSON Lines (default) or Parquet shards")  # fmt: skip
    add_decode_arguments(corpus)
    add_server_arguments(corpus, default=None)
    ray = corpus.add_argument_group("Ray (pip install .[ray])")
    ray.add_argument("--ray", metavar="ADDRESS",
                     help="run on this Ray cluster (auto: the one this machine is in)")  # fmt: skip
    ray.add_argument("--actors", type=positive(int), default=1,
                     help="transcribing actors, each one engine (default 1)")  # fmt: skip
    ray.add_argument("--cpus-per-actor", type=positive(float), default=1.0, metavar="N",
                     help="CPUs reserved for each actor, its threads too (default 1)")  # fmt: skip
    ray.add_argument("--gpus-per-actor", type=positive(float, zero=True), default=0.0,
                     metavar="N", help="GPUs for each actor (default 0)")  # fmt: skip
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


def positive(kind: Callable[[str], float], *, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a number above 0 (or from 0, with `zero`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(
                f"{text!r}: must be {'0 or' if zero else ''} more than 0"
            )
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    if args.ray and args.url:
        print("error: --ray and --url are two ways to run the job: choose one", file=sys.stderr)
        return 2
    try:
        keywords, languages = biasing_of(args)
    except (OSError, UnicodeDecodeError, BadRequest) as error:
        print(f"error: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    missing = needed_packages(args)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    paths = in_shard(listed_inputs(args.inputs), *args.shard)
    if not paths:
        print("error: no audio files found in the inputs", file=sys.stderr)
        return 2
    options = DecodeOptions(args.language, not args.no_itn, word_timestamps=args.words,
                            keywords=keywords, languages=languages)  # fmt: skip
    manifest = Manifest.open(args.out, args.format)
    try:
        counts = label(paths, manifest, options, args)
    except StartupError as error:  # the model, or the cluster, could not be reached
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        manifest.close()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    print(f"{len(paths)} files: {summary}; manifest in {args.out}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def needed_packages(args: argparse.Namespace) -> str:
    """What the flags need that is not installed, in words ("" when nothing is missing)."""
    if args.ray and importlib.util.find_spec("ray") is None:
        return "--ray needs Ray: pip install .[ray]"
    if args.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        return "--format parquet needs pyarrow: pip install .[ray] (or pyarrow alone)"
    return ""


def label(
    paths: list[Path], manifest: Manifest, options: DecodeOptions, args: argparse.Namespace
) -> Counter[str]:
    """Every file's rows, by the model in this process, on a Ray cluster or by a server."""
    if args.ray:
        from sensevoice_server.cli.corpus_ray import label_on_ray

        return label_on_ray(paths, manifest, options, args)
    labeller: Labeller
    if args.url:
        from sensevoice_server.cli.corpus_remote import Remote

        labeller = Remote(options, args)
    else:
        labeller = InProcess(options, args)
    return asyncio.run(label_all(paths, manifest, labeller, args.retry_failed))


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


class Labeller(Protocol):
    """Who transcribes a file for label_all: the model in this process or a server."""

    async def rows(
        self, path: str, sha: str, data: bytes
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The file's row and its segment rows; raises ServiceError for a file that fails."""
        ...

    async def close(self) -> None: ...


class InProcess:
    """The app's Transcriber in this process, loaded when the first file needs it (a rerun
    with nothing to do loads no model)."""

    def __init__(self, options: DecodeOptions, args: argparse.Namespace) -> None:
        self.options, self.args = options, args
        self.transcriber: Transcriber | None = None

    async def rows(
        self, path: str, sha: str, data: bytes
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self.transcriber is None:
            self.transcriber = await started_transcriber(self.args, needs_speakers=False)
        transcript = (await self.transcriber.transcribe(data, self.options)).transcript
        return done_row(path, sha, transcript), segment_rows(transcript, path, sha)

    async def close(self) -> None:
        if self.transcriber is not None:
            await asyncio.to_thread(self.transcriber.close, 60)


async def label_all(
    paths: list[Path], manifest: Manifest, labeller: Labeller, retry_failed: bool
) -> Counter[str]:
    """Each file read and hashed, planned from the manifest, transcribed if need be, and
    its rows written, one file after the other."""
    tally = Tally(len(paths))
    max_bytes = int(FILE_LIMIT_MB * 1024 * 1024)
    try:
        for path in paths:
            try:
                data = await asyncio.to_thread(read_input, path, max_bytes)
            except (OSError, ServiceError, ValueError) as error:  # unreadable: no sha256
                if (str(path), "") in manifest.listed and not retry_failed:
                    tally.note(path, "skipped")
                else:
                    manifest.add(failed_row(str(path), "", read_error(error)), [])
                    tally.note(path, "failed")
                continue
            sha = hashlib.sha256(data).hexdigest()
            kind = plan(manifest, str(path), sha, retry_failed)
            if kind == "transcribe":
                kind = await transcribe(labeller, manifest, str(path), sha, data)
            elif kind in ("duplicate", "failed before"):
                manifest.add(known_row(manifest, str(path), sha), [])
            tally.note(path, kind)
    finally:
        await labeller.close()
    return tally.counts


async def transcribe(labeller: Labeller, manifest: Manifest, path: str, sha: str,
                     data: bytes) -> str:  # fmt: skip
    try:
        file_row, segments = await labeller.rows(path, sha, data)
    except ServiceError as error:
        manifest.add(failed_row(path, sha, error.message), [])
        return "failed"
    manifest.add(file_row, segments)
    return "transcribed"
