"""Fixtures both tiers share: the tiny random checkpoint, and settings that point at it.

The tiny checkpoint is built once per test session through the real funasr format and
loaded through the same AutoModel path users take (sensevoice_server/testing/checkpoint.py
says how). Tests under tests/unit/ run the app in-process (marked `unit`); tests under
tests/e2e/ start real processes and talk to them with real clients.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

# The suite runs several model processes on two cores at once; spinning OpenMP threads then
# turn a 0.4 s decode into seconds. Set before torch loads; apps started here inherit it.
# (On a machine of its own, the default active waiting is faster: see the README.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sensevoice_server.logs import configure_logging

configure_logging("info")  # before funasr is imported anywhere

from sensevoice_server.settings import Settings  # noqa: E402
from sensevoice_server.testing.checkpoint import build_checkpoint  # noqa: E402
from sensevoice_server.testing.reference import reference_model as build_reference  # noqa: E402


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without Python's own teardown of torch, funasr and gradio (5-10 s of nothing,
    as the app itself does): the summary is printed and every fixture is finalised by now."""
    status = getattr(config, "_sensevoice_exitstatus", None)
    if status is not None and os.environ.get("SENSEVOICE_TEST_SLOW_EXIT") is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._sensevoice_exitstatus = exitstatus  # type: ignore[attr-defined]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = "unit" if "/tests/unit/" in str(item.path) else "e2e"
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = os.environ.get("SENSEVOICE_TEST_MODEL")  # a directory built earlier, to save 8 s
    if cached and (Path(cached) / "model.pt").exists():
        return Path(cached)
    return build_checkpoint(tmp_path_factory.mktemp("model") / "tiny", "tiny")


@pytest.fixture(scope="session")
def _export_started(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[Path]]:
    """The tiny checkpoint's ONNX export, begun at once in a process of its own, so it runs
    on the other core while the first tests run (it takes about 10 s)."""
    from sensevoice_server.engine.backends.onnx import export_in_subprocess

    directory = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(lambda: export_in_subprocess(tiny_model, directory) or directory)


@pytest.fixture(scope="session")
def settings(tiny_model: Path, _export_started: Future[Path]) -> Settings:
    return Settings(
        model=str(tiny_model), vad_model="silero-vad", device="cpu", ncpu=1, cache_url="none",
        backend="torch",
    )  # fmt: skip


@pytest.fixture(scope="session")
def model_env(tiny_model: Path, _export_started: Future[Path]) -> dict[str, str]:
    """SENSEVOICE_* variables for an app on the tiny model (silero VAD needs no download)."""
    return {
        "SENSEVOICE_MODEL": str(tiny_model),
        "SENSEVOICE_VAD_MODEL": "silero-vad",
        "SENSEVOICE_DEVICE": "cpu",
        "SENSEVOICE_NCPU": "1",
        "SENSEVOICE_CACHE_URL": "none",  # tests that exercise the cache choose their own
        "SENSEVOICE_BACKEND": "torch",
    }


@pytest.fixture(scope="session")
def reference_model(tiny_model: Path) -> Any:
    """The reference pipeline (docs/ARCHITECTURE.md, "Reference behaviour"): what every
    front end must match."""
    return build_reference(str(tiny_model), ncpu=1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A real redis-server on a free port, without persistence; tests may stop and restart it."""
    from sensevoice_server.testing.servers import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def campplus_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight CAM++ speaker model in its real format (0.2 s to build)."""
    from sensevoice_server.testing.campplus import build_campplus

    return build_campplus(tmp_path_factory.mktemp("campplus") / "campplus")


@pytest.fixture(scope="session")
def tiny_onnx(_export_started: Future[Path]) -> Path:
    """The tiny checkpoint exported as the server exports it (in a process of its own:
    tracing deep inside pytest's stack trips a CPython recursion check)."""
    return _export_started.result(timeout=300)
