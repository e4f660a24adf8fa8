"""A bad SQLite cache never stops the service (issue 17, items 1 and 12).

Before: a cache file that was not a database (a crash or a full disk can leave one) ended
start-up with a traceback, so under Supervisor the service restarted in a loop until a person
deleted the file; a full disk under the cache turned cache reads off along with the writes.
Now the real app, started on such files, becomes ready, says what it did in one WARNING line,
keeps the bad file, and serves; corruption found while running costs that one request its
cache; a directory it cannot write means no cache, not no service.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sensevoice_server.cache import SqliteStore
from sensevoice_server.testing.servers import AppProcess, run_apps
from tests.e2e.test_cache_stores import fill, small_disk, smash
from tests.e2e.test_service_cache import clip, transcribe


@dataclass
class Case:
    app: AppProcess
    path: Path  # the cache file the app was given
    original: bytes  # what was in it before the app started
    full_disk_possible: bool = False

    def cache_warnings(self) -> list[str]:
        return [line for line in self.app.log().splitlines()
                if " WARNING sensevoice_server.cache" in line]  # fmt: skip

    def kept(self) -> list[Path]:
        kept = self.path.parent.glob(f"{self.path.name}.corrupt-*")
        return sorted(p for p in kept if not p.name.endswith(("-wal", "-shm")))


def truncated_database(path: Path, scratch: Path) -> None:
    """A real cache file cut short, as a crash on a full disk leaves one."""
    store = SqliteStore(scratch, max_bytes=1 << 26, ttl_s=None)
    for i in range(100):
        store.set(f"k{i}", {"text": "x" * 2000, "i": i})
    store.close()
    data = scratch.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@contextlib.contextmanager
def unwritable_directory(path: Path) -> Iterator[Path]:
    """A cache directory nobody can write: read-only for a user; for root (whom permissions
    do not stop) a read-only tmpfs, or where mounting is not allowed, a regular file where
    the directory should be."""
    if os.geteuid() != 0:
        path.mkdir(mode=0o555)
        yield path
        path.chmod(0o755)
        return
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["umount", "--lazy", str(path)], check=True)
    else:
        path.rmdir()
        path.write_text("not a directory")
        yield path


@pytest.fixture(scope="module")
def cases(
    model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Case]]:
    """Three apps started at once: on random bytes, on a truncated database (on a small disk
    of its own, where it can be mounted, for the full-disk test), and in a directory that
    cannot be written."""
    base = tmp_path_factory.mktemp("cache-recovery")
    with contextlib.ExitStack() as stack:
        garbage = base / "garbage" / "cache.sqlite3"
        garbage.parent.mkdir()
        garbage.write_bytes(os.urandom(16384))
        try:
            disk = stack.enter_context(small_disk(base / "disk", 2048))
            full_disk_possible = True
        except pytest.skip.Exception:
            disk, full_disk_possible = base / "disk", False
        truncated = disk / "cache.sqlite3"
        truncated_database(truncated, base / "scratch.sqlite3")
        unwritable = stack.enter_context(unwritable_directory(base / "ro")) / "cache.sqlite3"
        paths = {"garbage": garbage, "truncated": truncated, "unwritable": unwritable}
        originals = {name: p.read_bytes() if p.is_file() else b"" for name, p in paths.items()}
        envs = [{**model_env, "SENSEVOICE_CACHE_URL": f"sqlite://{p}"} for p in paths.values()]
        apps = stack.enter_context(run_apps(envs, base))
        yield {
            name: Case(app, paths[name], originals[name], full_disk_possible)
            for name, app in zip(paths, apps, strict=True)
        }


@pytest.mark.parametrize("name", ["garbage", "truncated"])
def test_a_corrupt_file_at_start_is_kept_aside_and_a_fresh_cache_serves(
    cases: dict[str, Case], name: str, tmp_path: Path
) -> None:
    case = cases[name]
    (kept,) = case.kept()
    assert kept.read_bytes() == case.original  # kept as it was, for whoever wants to look
    warning = case.cache_warnings()[0]  # (a later test may add its own)
    assert str(case.path) in warning and str(kept) in warning and "corrupt" in warning
    assert "Traceback" not in case.app.log() and "RESULT CACHE UNAVAILABLE" not in case.app.log()
    path = clip(tmp_path)
    assert not transcribe(case.app, path)["from_cache"]
    assert transcribe(case.app, path)["from_cache"]


def test_corruption_while_running_costs_one_request_its_cache(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["garbage"]
    path = clip(tmp_path)
    transcribe(case.app, path)
    assert transcribe(case.app, path)["from_cache"]
    warnings_before = len(case.cache_warnings())
    smash(case.path)  # under the running app: database, log and index overwritten
    answer = transcribe(case.app, path)  # 200, computed without the cache
    assert not answer["from_cache"]
    assert transcribe(case.app, path)["from_cache"]  # ... and stored in the fresh file
    (warning,) = case.cache_warnings()[warnings_before:]
    newest = max(case.kept(), key=lambda p: p.stat().st_mtime_ns)
    assert str(case.path) in warning and str(newest) in warning
    assert "Traceback" not in case.app.log() and case.app.process.poll() is None
    assert httpx.get(f"{case.app.url}/cache/stats").json()["errors"] == 1


def test_a_cache_directory_that_cannot_be_written_serves_without_a_cache(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["unwritable"]
    (warning,) = case.cache_warnings()
    assert f"cannot use {case.path}" in warning and "serving without a result cache" in warning
    assert "Traceback" not in case.app.log() and "RESULT CACHE UNAVAILABLE" not in case.app.log()
    path = clip(tmp_path)
    assert [transcribe(case.app, path)["from_cache"] for _ in range(2)] == [False, False]
    stats = httpx.get(f"{case.app.url}/cache/stats").json()
    assert stats["store"] == "sqlite" and stats["errors"] >= 2 and stats["entries"] is None


def test_a_full_disk_under_the_cache_still_serves_its_hits(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["truncated"]
    if not case.full_disk_possible:
        pytest.skip("mounting a small tmpfs (a disk that can really fill up) needs root")
    kept = clip(tmp_path)
    transcribe(case.app, kept)
    fill(case.path.parent)
    answers = []
    for _ in range(3):  # each new clip's write fails; the stored clip right after still hits
        answers.append(transcribe(case.app, clip(tmp_path))["from_cache"])
        answers.append(transcribe(case.app, kept)["from_cache"])
    assert answers == [False, True] * 3
    assert "write failed" in case.app.log() and "Traceback" not in case.app.log()
