"""`python -m sensevoice_server.cli batch PATH...`: transcribe files and folders to files.

Folders are searched recursively for audio files. Each output lands beside its input, or
under --out with the same relative path, in --format (text, srt, vtt, json, verbose_json,
diarized_json: the API's formats and bytes; txt is text's other name);
inputs that would share an output keep their own suffix (en.wav.srt, en.mp3.srt). A file
whose output exists is skipped unless --overwrite, so an interrupted run resumes (outputs
are written whole or not at all). One bad file is reported and the rest go on: exit status
0 when every file succeeded, 1 when some failed, with a summary table either way. It runs in
this process (the model loads once, with the app's own model, backend and option flags), or
against a running server with --url, whose cache and queue then apply; --concurrency
spreads files over the replicas behind the nginx of deploy/, retrying a 429 after its
Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sensevoice_server import formats
from sensevoice_server.cli.files import (
    Job,
    OutputCollision,
    find_audio,
    plan,
    read_input,
    remove_leftovers,
    split_done,
    write_output,
)
from sensevoice_server.cli.stream import add_server_arguments
from sensevoice_server.errors import BadRequest
from sensevoice_server.options import (
    LANGUAGES,
    DecodeOptions,
    checked_keywords,
    checked_languages,
    listed,
)
from sensevoice_server.subtitles import CueLimits

if TYPE_CHECKING:
    from sensevoice_server.transcriber import Transcriber

# what an in-process run takes from the app's flags (settings.py)
APP_FLAGS = ("model", "vad_model", "device", "ncpu", "backend", "precision", "onnx_dir",
             "speakers", "speaker_model", "cache_url", "max_duration_s",
             "max_upload_mb")  # fmt: skip
FILE_LIMIT_MB = 4000.0  # a file, not an upload: --max-upload-mb lowers it

Transcribe = Callable[[Path], Awaitable[tuple[str, float]]]
"""One file to (its output's text, its audio seconds); raises with a message on failure."""


@dataclass
class Outcome:
    source: Path
    target: Path
    status: str  # "done", "skipped" or "failed"
    audio_s: float = 0.0
    message: str = ""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = commands.add_parser(
        "batch", help="transcribe files and folders to txt/srt/vtt/json files",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    batch.add_argument("paths", nargs="+", type=Path, help="audio files and folders")
    batch.add_argument("--out", type=Path, help="write outputs here (default: beside each input)")
    batch.add_argument("--format", default="text", type=formats.canonical,
                       choices=list(formats.FORMATS), help="txt is text's other name")  # fmt: skip
    batch.add_argument("--overwrite", action="store_true", help="redo files already done")
    add_decode_arguments(batch)
    batch.add_argument(
        "--words", action="store_true", help="word times in verbose_json (srt/vtt: always)"
    )
    batch.add_argument("--num-speakers", type=int, help="with --speakers: how many")
    batch.add_argument("--max-line-chars", type=int, default=42, help="subtitle line (42)")
    batch.add_argument("--max-cue-s", type=float, default=7.0, help="subtitle cue, s (7)")
    batch.add_argument("--no-tags", action="store_true", help="no emoji in subtitles")
    add_server_arguments(batch, default=None)
    batch.add_argument("--concurrency", type=int, default=1,
                       help="files in flight at once, with --url (default 1)")  # fmt: skip
    add_app_arguments(batch)
    batch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    sources = find_audio(args.paths)
    if not sources:
        print("error: no audio files found in " + " ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    try:
        jobs = plan(sources, args.paths, args.out, formats.FORMATS[args.format].suffix)
    except OutputCollision as collision:
        print(f"error: {collision}", file=sys.stderr)
        return 2
    try:
        args.keyword_list, args.language_list = biasing_of(args)
    except (OSError, UnicodeDecodeError, BadRequest) as error:
        print(f"error: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    remote = args.url is not None
    outcomes, elapsed = asyncio.run(run_all(jobs, args, remote))
    print_summary(outcomes, elapsed)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def max_file_bytes(args: argparse.Namespace) -> int:
    return int(getattr(args, "max_upload_mb", FILE_LIMIT_MB) * 1_000_000)


async def run_all(
    jobs: list[Job], args: argparse.Namespace, remote: bool
) -> tuple[list[Outcome], float]:
    """Every file's outcome, in input order, and the seconds spent transcribing (the model's
    load not included)."""
    from tqdm import tqdm

    todo, done = split_done(jobs, args.overwrite)
    outcomes = [Outcome(s, t, "skipped") for s, t in done]
    if not todo:
        return outcomes, 0.0
    remove_leftovers([target for _, target in todo])
    transcribe: Transcribe
    close: Callable[[], Awaitable[None]]
    if remote:
        from sensevoice_server.cli.remote import RemoteTranscriber

        client = RemoteTranscriber(args, max_file_bytes(args))
        transcribe, concurrency, close = client.transcribe, max(1, args.concurrency), client.aclose
    else:
        transcribe, close = await local_transcriber(args)
        concurrency = 2  # one decoding while the other runs: all the model needs
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(todo), unit="file", dynamic_ncols=True, file=sys.stderr)
    audio_s = 0.0
    started = time.monotonic()

    async def one(source: Path, target: Path) -> Outcome:
        nonlocal audio_s
        async with gate:
            try:
                text, seconds = await transcribe(source)
                await asyncio.to_thread(write_output, target, text)
                outcome = Outcome(source, target, "done", seconds)
            except Exception as error:  # one bad file is reported; the rest go on
                outcome = Outcome(
                    source, target, "failed", message=str(error) or type(error).__name__
                )
        audio_s += outcome.audio_s
        elapsed = time.monotonic() - started
        bar.set_postfix(
            audio_h=f"{audio_s / 3600:.2f}", rtf=f"{elapsed / audio_s:.3f}" if audio_s else "-"
        )
        bar.update()
        return outcome

    try:
        outcomes += await asyncio.gather(*(one(s, t) for s, t in todo))
    finally:
        bar.close()
        await close()
    order = {source: index for index, (source, _) in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.source]), time.monotonic() - started


async def local_transcriber(
    args: argparse.Namespace,
) -> tuple[Transcribe, Callable[[], Awaitable[None]]]:
    """The service's own Transcriber, in this process: the model loads once."""
    from sensevoice_server.errors import ServiceError

    fmt = formats.FORMATS[args.format]
    transcriber = await started_transcriber(args, needs_speakers=fmt.needs_speakers)
    options = options_of(args)
    rendering = rendering_of(args)
    max_bytes = max_file_bytes(args)

    async def transcribe(source: Path) -> tuple[str, float]:
        data = await asyncio.to_thread(read_input, source, max_bytes)
        try:
            result = await transcriber.transcribe(data, options)
        except ServiceError as error:
            raise RuntimeError(error.message) from error
        return fmt.render(result.transcript, rendering), result.transcript.duration

    async def close() -> None:
        await asyncio.to_thread(transcriber.close, 60)

    return transcribe, close


async def started_transcriber(args: argparse.Namespace, *, needs_speakers: bool) -> Transcriber:
    """The Transcriber of the app's flags (APP_FLAGS), loaded and ready, in this process;
    a file is not an upload, so long files and big ones are let in."""
    from sensevoice_server.core import build_transcriber
    from sensevoice_server.model_source import resolve
    from sensevoice_server.settings import Settings

    given = {name: getattr(args, name) for name in APP_FLAGS if hasattr(args, name)}
    given.setdefault("max_duration_s", 6 * 3600.0)
    given.setdefault("max_upload_mb", FILE_LIMIT_MB)
    settings, _ = resolve(Settings(**given))
    if needs_speakers and not settings.speakers:
        raise SystemExit("error: this output needs speaker labels: add --speakers")
    transcriber = build_transcriber(settings)
    transcriber.start()
    if not await asyncio.to_thread(transcriber.wait_ready, None):
        raise SystemExit(f"error: the model could not be loaded: {transcriber.failure}")
    return transcriber


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that change what the model gives, shared with the corpus command."""
    parser.add_argument("--language", default="auto", choices=LANGUAGES)
    parser.add_argument("--no-itn", action="store_true", help="no punctuation or number ITN")
    parser.add_argument(
        "--keywords",
        action="append",
        default=[],
        metavar="LIST",
        help="names or terms to favour, comma-separated (repeatable)",
    )
    parser.add_argument(
        "--keywords-file", type=Path, metavar="FILE", help="more keywords, one per line (UTF-8)"
    )
    parser.add_argument(
        "--languages",
        default="",
        metavar="LIST",
        help="with --language auto: detect only among these, e.g. zh,en",
    )


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """The app's model flags (and their variables), for runs in this process."""
    from sensevoice_server.settings import argument_parser

    app = argument_parser("sensevoice-server")
    group = parser.add_argument_group("model (in-process runs; the app's flags and variables)")
    for action in app._actions:
        if action.dest in APP_FLAGS:
            group._add_action(action)


def biasing_of(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keywords (flags, then the file) and languages, checked as the API checks them."""
    given = [part for value in args.keywords for part in listed(value)]
    if args.keywords_file is not None:
        given += args.keywords_file.read_text(encoding="utf-8").splitlines()
    languages = checked_languages(listed(args.languages), "--languages")
    return checked_keywords(given, "--keywords"), languages


def options_of(args: argparse.Namespace) -> DecodeOptions:
    words = args.words or formats.FORMATS[args.format].word_times
    return DecodeOptions(args.language, not args.no_itn, word_timestamps=words,
                         num_speakers=args.num_speakers, keywords=args.keyword_list,
                         languages=args.language_list)  # fmt: skip


def rendering_of(args: argparse.Namespace) -> formats.Rendering:
    """What the flags change in a rendering: the same as what cli/remote.py asks the API for."""
    limits = CueLimits(max_line_chars=args.max_line_chars, max_cue_s=args.max_cue_s,
                       tags=not args.no_tags)  # fmt: skip
    return formats.Rendering(limits=limits, words=args.words)


def print_summary(outcomes: list[Outcome], elapsed_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    counts = {
        status: sum(o.status == status for o in outcomes)
        for status in ("done", "skipped", "failed")
    }
    audio_h = sum(o.audio_s for o in outcomes) / 3600
    table = Table(title="sensevoice batch")
    for column in ("files", "done", "skipped", "failed", "audio (h)", "time (s)", "RTF"):
        table.add_column(column, justify="right")
    rtf = f"{elapsed_s / (audio_h * 3600):.3f}" if audio_h else "-"
    table.add_row(str(len(outcomes)), str(counts["done"]), str(counts["skipped"]),
                  str(counts["failed"]), f"{audio_h:.3f}", f"{elapsed_s:.1f}", rtf)  # fmt: skip
    console = Console(stderr=True)
    console.print(table)
    for outcome in outcomes:  # one plain line per failure: easy to grep and to read
        if outcome.status == "failed":
            print(f"failed: {outcome.source}: {outcome.message}", file=sys.stderr)
