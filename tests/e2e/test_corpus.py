"""The corpus command, run as a user runs it: a folder tree in, a manifest out, and reruns
that do only what is new, in JSON Lines or Parquet. (The same job on a Ray cluster:
test_corpus_ray.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_server.corpus_manifest import read_manifest
from sensevoice_server.testing.servers import ROOT, run_app
from tests.support.samples import SAMPLES


def corpus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "corpus", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Nested folders, one clip under two names (same bytes), the same name in two folders,
    a corrupt file and an empty one."""
    root = tmp_path / "corpus"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    shutil.copy(SAMPLES / "en.wav", root / "a" / "en.wav")
    shutil.copy(SAMPLES / "en.wav", root / "b" / "copy-of-en.wav")  # same bytes
    shutil.copy(SAMPLES / "zh.wav", root / "a" / "deep" / "clip.wav")
    shutil.copy(SAMPLES / "ja.wav", root / "b" / "clip.wav")  # same name, other folder
    (root / "b" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    (root / "b" / "empty.wav").write_bytes(b"")
    return root


def test_a_corpus_run_lists_every_file_once_and_a_rerun_adds_nothing(
    model_env: dict[str, str], tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "manifest"
    first = corpus(model_env, str(tree), "--out", str(out))
    assert first.returncode == 1, first.stderr  # two files failed, the rest went on
    files = rows(out / "files.jsonl")
    by_name = {Path(row["path"]).relative_to(tree).as_posix(): row for row in files}
    assert sorted(by_name) == ["a/deep/clip.wav", "a/en.wav", "b/clip.wav", "b/copy-of-en.wav",
                               "b/corrupt.wav", "b/empty.wav"]  # fmt: skip
    assert by_name["a/en.wav"]["sha256"] == by_name["b/copy-of-en.wav"]["sha256"]
    assert {by_name[n]["status"] for n in ("b/corrupt.wav", "b/empty.wav")} == {"failed"}
    assert all(by_name[n]["error"] for n in ("b/corrupt.wav", "b/empty.wav"))
    assert by_name["a/en.wav"]["language"] and by_name["a/en.wav"]["duration"] > 5
    segments = rows(out / "segments.jsonl")
    done = {row["sha256"] for row in files if row["status"] == "done"}
    assert {row["sha256"] for row in segments} == done  # transcribed once per content
    assert len({row["path"] for row in segments}) == 3  # the copy was not transcribed again
    assert all({"start", "end", "text", "plain_text", "language", "emotion", "events"} <= set(r)
               for r in segments)  # fmt: skip
    assert "transcribed" in first.stderr and "duplicate" in first.stderr

    again = corpus(model_env, str(tree), "--out", str(out))
    assert rows(out / "files.jsonl") == files and rows(out / "segments.jsonl") == segments
    assert "6 skipped" in again.stderr, again.stderr


def test_new_changed_and_retried_files_and_a_torn_manifest_are_taken_on_a_rerun(
    model_env: dict[str, str], tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "manifest"
    listing = tmp_path / "list.txt"  # a list file names paths relative to its folder
    listing.write_text("corpus/a/en.wav\ncorpus/b/corrupt.wav\n", encoding="utf-8")
    corpus(model_env, str(listing), "--out", str(out))
    assert len(rows(out / "files.jsonl")) == 2
    with open(out / "files.jsonl", "a", encoding="utf-8") as torn:  # a crash mid-row
        torn.write('{"path": "half a ro')
    with open(out / "segments.jsonl", "a", encoding="utf-8") as orphan:  # a file never marked
        orphan.write(json.dumps({"sha256": "f" * 64, "path": "x.wav"}) + "\n")
    shutil.copy(SAMPLES / "ko.wav", tree / "a" / "en.wav")  # changed in place
    rerun = corpus(model_env, str(listing), str(tree / "a" / "deep"), "--out", str(out),
                   "--retry-failed")  # fmt: skip
    assert rerun.returncode == 1, rerun.stderr  # the corrupt file fails again
    files = rows(out / "files.jsonl")
    assert [Path(r["path"]).name for r in files[2:]] == ["en.wav", "corrupt.wav", "clip.wav"]
    assert files[2]["sha256"] != files[0]["sha256"] and files[2]["status"] == "done"
    assert all(r["sha256"] != "f" * 64 for r in rows(out / "segments.jsonl"))


def test_shards_split_the_inputs_without_overlap(
    model_env: dict[str, str], tree: Path, tmp_path: Path
) -> None:
    listed = []
    for part in ("1/2", "2/2"):
        out = tmp_path / part.replace("/", "-")
        corpus(model_env, str(tree), "--out", str(out), "--shard", part)
        listed += [row["path"] for row in rows(out / "files.jsonl")] if out.exists() else []
    assert sorted(listed) == sorted(str(p) for p in tree.rglob("*.wav"))


def test_parquet_shards_hold_the_same_rows_and_resume_by_content(
    model_env: dict[str, str], tree: Path, tmp_path: Path
) -> None:
    """--format parquet: the JSON Lines columns in shards; a rerun reads them and adds nothing,
    and removes what a crash left (a shard half-written aside, a segments shard whose files
    shard never came)."""
    pq = pytest.importorskip("pyarrow.parquet")
    jsonl, parquet = tmp_path / "jsonl", tmp_path / "parquet"
    corpus(model_env, str(tree), "--out", str(jsonl))
    corpus(model_env, str(tree), "--out", str(parquet), "--format", "parquet")
    shards = sorted(p.name for p in parquet.iterdir())
    assert [name.split("-")[0] for name in shards] == ["files", "segments"], shards
    assert pq.read_schema(parquet / shards[0]).names == list(rows(jsonl / "files.jsonl")[0])
    assert same_rows(read_manifest(parquet), read_manifest(jsonl))

    shutil.copy(parquet / shards[1], parquet / "segments-00000000000000000001.parquet")
    (parquet / ".files-00000000000000000002.parquet.part").write_bytes(b"PAR1 torn")
    again = corpus(model_env, str(tree), "--out", str(parquet), "--format", "parquet")
    assert "6 skipped" in again.stderr, again.stderr
    assert sorted(p.name for p in parquet.iterdir()) == shards
    assert same_rows(read_manifest(parquet), read_manifest(jsonl))


def same_rows(one: tuple[list[dict], list[dict]], other: tuple[list[dict], list[dict]]) -> bool:
    """Both manifests hold the same files rows and segments rows, whatever their order."""
    return all(
        sorted(repr(sorted(row.items())) for row in mine)
        == sorted(repr(sorted(row.items())) for row in theirs)
        for mine, theirs in zip(one, other, strict=True)
    )


def test_a_server_labels_the_corpus_with_the_rows_of_the_in_process_run(
    model_env: dict[str, str], tree: Path, tmp_path: Path
) -> None:
    """--url: the server transcribes (its cache and queue apply) and the manifest is the
    in-process one row for row, word times and the bad files' sentences included; a rerun
    sends nothing."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    corpus(model_env, str(tree), "--out", str(local), "--words")
    with run_app(model_env, tmp_path) as app:
        done = corpus({}, str(tree), "--out", str(remote), "--words", "--url", app.url)
        assert done.returncode == 1, done.stderr  # the corrupt and the empty file
        again = corpus({}, str(tree), "--out", str(remote), "--words", "--url", app.url)
    assert same_rows(read_manifest(remote), read_manifest(local))
    assert any("words" in row for row in read_manifest(remote)[1])
    assert "6 skipped" in again.stderr, again.stderr
