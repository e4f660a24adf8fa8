"""The corpus command on a real Ray cluster: two nodes on this machine with 4 logical CPUs
each, started by the tests as a user starts them (`ray start`) and bound to loopback
(sensevoice_server/testing/ray_cluster.py). The cluster must give the same rows as the
in-process run, survive a killed actor without losing or doubling a file, and resume by
content like the in-process run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensevoice_server.corpus_manifest import read_manifest
from sensevoice_server.testing.audio_files import write_samples
from sensevoice_server.testing.ray_cluster import Cluster, pids_running
from sensevoice_server.testing.servers import wait_until
from tests.e2e.test_corpus import corpus, same_rows
from tests.support.samples import SAMPLES, SPEECH_SAMPLES, load

pytest.importorskip("ray", reason="the ray extra: pip install .[ray]")

ACTOR_TITLE = "MapBatches(Transcribe)"  # in the command line Ray gives an actor's process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("ray-logs"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """33 files: 30 distinct clips of 2.5 s (slices of the samples) in nested folders, with
    the same names in several folders, a copy of one under another name (same bytes), a
    corrupt file and an empty one."""
    root = tmp_path_factory.mktemp("corpus")
    for name in SPEECH_SAMPLES:
        speech = load(name)
        for i in range(6):
            folder = root / Path(name).stem / f"part{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            write_samples(folder / f"clip{i}.wav", speech[i * 8000 : i * 8000 + 40_000])
    (root / "extra").mkdir()
    shutil.copy(root / "en" / "part0" / "clip0.wav", root / "extra" / "same-bytes.wav")
    (root / "extra" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    (root / "extra" / "empty.wav").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def in_process(
    model_env: dict[str, str], tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The manifest of the in-process run: what every cluster run must match."""
    out = tmp_path_factory.mktemp("in-process")
    done = corpus(model_env, str(tree), "--out", str(out))
    assert done.returncode == 1, done.stderr  # the corrupt and the empty file
    return out


def on_ray(cluster: Cluster, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = corpus(env, *args, "--ray", cluster.address)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done


def test_the_cluster_writes_the_rows_the_in_process_run_writes(
    cluster: Cluster, model_env: dict[str, str], tree: Path, in_process: Path, tmp_path: Path
) -> None:
    """Two actors on two nodes, decoding in Ray tasks: row for row the in-process manifest
    (the duplicate listed, not transcribed twice; the bad files failed with the same
    sentence), and the progress of each file shown."""
    done = on_ray(cluster, model_env, str(tree), "--out", str(tmp_path), "--actors", "2")
    assert same_rows(read_manifest(in_process), read_manifest(tmp_path))
    files, _ = read_manifest(tmp_path)
    assert len(files) == 33 and sum(row["status"] == "failed" for row in files) == 2
    assert "[33/33]" in done.stderr and "1 duplicate, 2 failed, 30 transcribed" in done.stderr


def test_a_killed_actor_loses_no_file_and_doubles_none(
    cluster: Cluster, model_env: dict[str, str], tree: Path, in_process: Path, tmp_path: Path
) -> None:
    """The actor is killed (SIGKILL) once the first files are written: Ray restarts it and
    runs its batch again, and the manifest still lists every file once."""
    command = [sys.executable, "-m", "sensevoice_server.cli", "corpus", str(tree),
               "--out", str(tmp_path), "--ray", cluster.address]  # fmt: skip
    log = tmp_path.parent / "killed-run.log"
    with open(log, "wb") as output:
        run = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                               env={**os.environ, **model_env})  # fmt: skip
        try:
            assert wait_until(
                lambda: written(tmp_path) >= 4 and pids_running(ACTOR_TITLE), 120, 0.02
            ), log.read_text()[-3000:]
            os.kill(pids_running(ACTOR_TITLE)[0], signal.SIGKILL)
            at_kill = written(tmp_path)
            assert run.wait(180) in (0, 1), log.read_text()[-3000:]
        finally:
            run.kill()
    assert at_kill < 33, "the run ended before the actor was killed"
    assert same_rows(read_manifest(in_process), read_manifest(tmp_path))


def written(out: Path) -> int:
    files = out / "files.jsonl"
    return len(files.read_bytes().splitlines()) if files.exists() else 0


def test_a_rerun_on_the_cluster_does_nothing_and_new_files_add_their_rows(
    cluster: Cluster, model_env: dict[str, str], tree: Path, in_process: Path, tmp_path: Path
) -> None:
    """The in-process manifest resumed on the cluster: nothing redone; then a new clip and a
    new name for known bytes, written as Parquet: one transcribed, the other listed."""
    out = tmp_path / "manifest"
    shutil.copytree(in_process, out)
    again = on_ray(cluster, model_env, str(tree), "--out", str(out))
    assert "33 skipped" in again.stderr, again.stderr[-3000:]
    assert same_rows(read_manifest(in_process), read_manifest(out))

    added = tmp_path / "added"
    added.mkdir()
    shutil.copy(SAMPLES / "en.wav", added / "new.wav")
    shutil.copy(tree / "zh" / "part1" / "clip1.wav", added / "known.wav")
    more = on_ray(cluster, model_env, str(tree), str(added), "--out", str(out),
                  "--format", "parquet")  # fmt: skip
    assert "1 duplicate" in more.stderr and "1 transcribed" in more.stderr, more.stderr[-3000:]
    files, segments = read_manifest(out)
    assert len(files) == 35 and {Path(r["path"]).name for r in files[33:]} == {
        "new.wav",
        "known.wav",
    }
    assert any(Path(row["path"]).name == "new.wav" for row in segments)
