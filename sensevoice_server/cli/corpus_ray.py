"""The corpus job on a Ray cluster (`corpus --ray ADDRESS|auto`): the same rows as the
in-process run, written by the same manifest writer, so either run resumes the other's work.

The stages, as Ray Data runs them:

1. hashing: Ray tasks read each listed file and take its SHA-256 (a file's content is what
   says whether it needs work, so this pass comes first and reads every file);
2. planning, on the driver, from the manifest: skipped, a duplicate of known content, failed
   before, or to transcribe (content seen twice in this run is transcribed once);
3. reading and decoding to 16 kHz mono (Ray tasks, PyAV through audio.decode, as the service
   decodes an upload);
4. transcribing: an actor pool (`map_batches` with a class), each actor one engine loaded
   once, `--actors` of them with `--cpus-per-actor` / `--gpus-per-actor` each;
5. writing, on the driver, as results stream in: one writer per manifest, rows keyed by
   content.

A killed actor is restarted by Ray and the batch it held is run again (Ray Data gives its
actor pools `max_restarts=-1` and `max_task_retries=-1`); a batch's rows reach the driver
once it has finished, and the driver writes a content's rows once per run whatever reaches
it, so a retry can neither lose a file nor list it twice. Inputs must be readable at the
same path on every node (a shared file system), as in Ray's own batch-inference examples.
Ray is imported here only, and only for `--ray`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import hashlib
import json
import logging
import os
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensevoice_server.audio import AudioLimits
from sensevoice_server.cli.batch import APP_FLAGS, FILE_LIMIT_MB, started_transcriber
from sensevoice_server.cli.files import read_input
from sensevoice_server.corpus_manifest import Manifest
from sensevoice_server.corpus_rows import (
    Tally,
    done_row,
    failed_row,
    known_row,
    plan,
    read_error,
    segment_rows,
)
from sensevoice_server.errors import ServiceError, StartupError
from sensevoice_server.options import DecodeOptions

if TYPE_CHECKING:
    from collections.abc import Iterator

    import ray.data

    from sensevoice_server.engine import EngineResult

FILES_PER_CALL = 4  # per actor call: few, so a killed actor's retry redoes little
# a decode task's reservation: an hour decoded is 230 MB of samples. Resources unlike the
# actors' also keep Ray Data from fusing decoding into them (they would decode, not run the
# model, while it waits)
DECODE_MEMORY = 512 * 1024**2
READ_BYTES = int(FILE_LIMIT_MB * 1024 * 1024)  # as the in-process run reads a file


def label_on_ray(
    paths: list[Path], manifest: Manifest, options: DecodeOptions, args: argparse.Namespace
) -> Counter[str]:
    import ray

    ray.init(address=args.ray, runtime_env={"env_vars": sensevoice_variables()},
             logging_level=logging.WARNING)  # fmt: skip
    try:
        tally = Tally(len(paths))
        hashed = hash_all(paths)
        todo = plan_all(paths, hashed, manifest, args.retry_failed, tally)
        if todo:
            transcribe_all(todo, manifest, options, args, tally)
        return tally.counts
    finally:
        ray.shutdown()


def sensevoice_variables() -> dict[str, str]:
    """The driver's SENSEVOICE_* variables, for the actors' settings: a flag not given falls
    back to its variable on the node, which has the cluster's environment, not this one's."""
    return {name: value for name, value in os.environ.items() if name.startswith("SENSEVOICE_")}


# --- 1. hashing --------------------------------------------------------------------------
def hash_all(paths: list[Path]) -> dict[str, tuple[str, str]]:
    """Each path's (sha256, "") or ("", why it could not be read), from Ray tasks."""
    import ray.data

    items = [{"path": str(path)} for path in paths]
    rows = ray.data.from_items(items).map(hash_file).take_all()
    return {row["path"]: (row["sha256"], row["error"]) for row in rows}


def hash_file(row: dict[str, Any]) -> dict[str, Any]:
    try:
        data = read_input(Path(row["path"]), READ_BYTES)
    except (OSError, ServiceError, ValueError) as error:
        return {"path": row["path"], "sha256": "", "error": read_error(error)}
    return {"path": row["path"], "sha256": hashlib.sha256(data).hexdigest(), "error": ""}


# --- 2. planning -------------------------------------------------------------------------
def plan_all(
    paths: list[Path], hashed: dict[str, tuple[str, str]], manifest: Manifest,
    retry_failed: bool, tally: Tally,
) -> dict[str, list[str]]:  # fmt: skip
    """What needs transcribing: each content once, with every path of it in input order (the
    first is the one transcribed, as in-process). Rows that need no model are written now."""
    todo: dict[str, list[str]] = {}
    for path in map(str, paths):
        sha, error = hashed[path]
        if error:  # unreadable: listed once, no sha256
            if (path, "") in manifest.listed and not retry_failed:
                tally.note(path, "skipped")
            else:
                manifest.add(failed_row(path, "", error), [])
                tally.note(path, "failed")
            continue
        kind = plan(manifest, path, sha, retry_failed)
        if kind == "transcribe":
            todo.setdefault(sha, []).append(path)
            continue
        if kind in ("duplicate", "failed before"):
            manifest.add(known_row(manifest, path, sha), [])
        tally.note(path, kind)
    return todo


# --- 3. to 5. decoding, transcribing, writing --------------------------------------------
def transcribe_all(
    todo: dict[str, list[str]], manifest: Manifest, options: DecodeOptions,
    args: argparse.Namespace, tally: Tally,
) -> None:  # fmt: skip
    import ray.data

    items = [{"path": paths[0], "sha256": sha} for sha, paths in todo.items()]
    pipeline = (
        ray.data.from_items(items, override_num_blocks=max(1, len(items) // FILES_PER_CALL))
        .map(functools.partial(decode_file, limits=decode_limits(args)), memory=DECODE_MEMORY)
        .map_batches(
            Transcribe, batch_size=FILES_PER_CALL, batch_format="pyarrow",
            fn_constructor_kwargs={"args": actor_args(args), "options": options},
            compute=ray.data.ActorPoolStrategy(size=args.actors),
            num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor or None,
        )  # Ray Data's own defaults restart a killed actor and rerun its batch
    )  # fmt: skip
    answered: set[str] = set()
    for row in rows_of_actors(pipeline):
        sha = row["planned_sha256"]
        if sha in answered:  # a retried batch that answered twice: its rows are written
            continue
        answered.add(sha)
        file_row = json.loads(row["file_row"])
        manifest.add(file_row, json.loads(row["segment_rows"]))
        first, *others = todo[sha]
        tally.note(first, "transcribed" if file_row["status"] == "done" else "failed")
        for path in others:  # the same bytes elsewhere: listed with the same outcome
            manifest.add({**file_row, "path": path}, [])
            tally.note(path, "duplicate" if file_row["status"] == "done" else "failed before")


def rows_of_actors(pipeline: ray.data.Dataset) -> Iterator[dict[str, Any]]:
    """The pipeline's rows as they come; an actor that cannot load its model stops the job
    with the reason (the last line of its error), not Ray's tracebacks of the actor."""
    try:
        yield from pipeline.iter_rows()
    except Exception as error:
        if not getattr(error, "actor_init_failed", False):
            raise
        reason = str(error).strip().splitlines()[-1].split(": ", 1)[-1]
        raise StartupError(f"the actors could not load the model: {reason}") from None


def decode_limits(args: argparse.Namespace) -> AudioLimits:
    """The limits the in-process run's Transcriber decodes with (batch.started_transcriber)."""
    from sensevoice_server.settings import Settings

    given = {name: getattr(args, name) for name in APP_FLAGS if hasattr(args, name)}
    given.setdefault("max_duration_s", 6 * 3600.0)
    given.setdefault("max_upload_mb", FILE_LIMIT_MB)
    settings = Settings(**given)
    return AudioLimits(settings.max_upload_bytes, settings.max_duration_s)


def decode_file(row: dict[str, Any], limits: AudioLimits) -> dict[str, Any]:
    """A file read and decoded to 16 kHz mono float32 (as bytes), or why it could not be."""
    from sensevoice_server.audio import decode

    decoded = {"path": row["path"], "planned_sha256": row["sha256"], "sha256": "",
               "pcm": b"", "error": ""}  # fmt: skip
    try:
        data = read_input(Path(row["path"]), READ_BYTES)
    except (OSError, ServiceError, ValueError) as error:  # gone since it was hashed
        return {**decoded, "error": read_error(error)}
    decoded["sha256"] = hashlib.sha256(data).hexdigest()  # the bytes decoded, changed or not
    try:
        decoded["pcm"] = decode(data, limits).tobytes()
    except ServiceError as error:
        decoded["error"] = error.message
    return decoded


def actor_args(args: argparse.Namespace) -> argparse.Namespace:
    """The flags an actor builds its engine from: threads for the CPUs it was given unless
    --ncpu says otherwise, and no result cache (the manifest already keys work by content)."""
    given = copy.copy(args)
    if not hasattr(given, "ncpu") and "SENSEVOICE_NCPU" not in os.environ:
        given.ncpu = max(1, round(args.cpus_per_actor))
    given.cache_url = "none"
    return given


class Transcribe:
    """One actor of the pool: its engine is loaded once, in the constructor, and it turns
    decoded files into their manifest rows (as JSON text: rows of any shape pass through
    Arrow unchanged)."""

    def __init__(self, args: argparse.Namespace, options: DecodeOptions) -> None:
        self.transcriber = asyncio.run(started_transcriber(args, needs_speakers=False))
        self.options = options

    def __call__(self, batch: Any) -> dict[str, list[str]]:
        rows = batch.to_pylist()
        # every file of the batch queued at once: the engine batches their segments
        jobs = [None if row["error"] else self.submit(row["pcm"]) for row in rows]
        answers: dict[str, list[str]] = {"planned_sha256": [], "file_row": [], "segment_rows": []}
        for row, job in zip(rows, jobs, strict=True):
            file_row, segments = self.rows_of(row, job)
            answers["planned_sha256"].append(row["planned_sha256"])
            answers["file_row"].append(json.dumps(file_row, ensure_ascii=False))
            answers["segment_rows"].append(json.dumps(segments, ensure_ascii=False))
        return answers

    def submit(self, pcm: bytes) -> tuple[Future[EngineResult] | ServiceError, float]:
        """The engine's job for a file (the same path as an upload's, past its cache), and
        the file's duration."""
        import numpy as np

        from sensevoice_server.audio import duration_s

        samples: np.ndarray = np.frombuffer(pcm, dtype=np.float32)
        try:
            job = self.transcriber.engine.submit(samples, self.options, admitted=True)
        except ServiceError as error:
            return error, 0.0
        return job, duration_s(samples)

    def rows_of(
        self, row: dict[str, Any], job: tuple[Future[EngineResult] | ServiceError, float] | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from sensevoice_server.transcriber import to_transcript

        path, sha = row["path"], row["sha256"]
        if job is None:
            return failed_row(path, sha, row["error"]), []
        future, seconds = job
        try:
            if isinstance(future, ServiceError):
                raise future
            transcript = to_transcript(future.result(), seconds, self.options)
        except ServiceError as error:
            return failed_row(path, sha, error.message), []
        return done_row(path, sha, transcript), segment_rows(transcript, path, sha)
