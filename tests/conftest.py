"""Shared fixtures: the tiny random checkpoint, settings that point at it, a running app.

The tiny checkpoint is built once per test session through the real funasr format and
loaded through the same AutoModel path users take (tests/make_checkpoint.py says how).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The suite runs several model processes on two cores at once; spinning OpenMP threads then
# turn a 0.4 s decode into seconds. Set before torch loads; apps started here inherit it.
# (On a machine of its own, the default active waiting is faster: see the README.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sensevoice_server.logs import configure_logging

configure_logging("info")  # before funasr is imported anywhere

from sensevoice_server.engine import Engine  # noqa: E402
from sensevoice_server.settings import Settings  # noqa: E402
from tests.make_checkpoint import build_checkpoint  # noqa: E402
from tests.reference import reference_model as build_reference_model  # noqa: E402
from tests.servers import AppProcess, RedisServer, run_app  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SPEECH_SAMPLES = ["en.wav", "zh.wav", "yue.wav", "ja.wav", "ko.wav"]
ENGLISH_FORMATS = [
    "en.wav",
    "en.mp3",
    "en.m4a",
    "en.ogg",
    "en.flac",
    "en.webm",
    "en_44k_stereo.wav",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("model") / "tiny", "tiny")


@pytest.fixture(scope="session")
def model_env(tiny_model: Path) -> dict[str, str]:
    """SENSEVOICE_* variables for an app on the tiny model (silero VAD needs no download)."""
    return {
        "SENSEVOICE_MODEL": str(tiny_model),
        "SENSEVOICE_VAD_MODEL": "silero-vad",
        "SENSEVOICE_DEVICE": "cpu",
        "SENSEVOICE_NCPU": "1",
        "SENSEVOICE_CACHE_URL": "none",  # tests that exercise the cache choose their own
    }


@pytest.fixture(scope="session")
def settings(tiny_model: Path) -> Settings:
    return Settings(
        model=str(tiny_model), vad_model="silero-vad", device="cpu", ncpu=1, cache_url="none"
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = Engine(settings)
    engine.start()
    assert engine.wait_ready(120), engine.failure
    yield engine
    engine.close(timeout=30)


@pytest.fixture(scope="session")
def reference_model(tiny_model: Path) -> Any:
    """The reference pipeline of DESIGN.md: what every front end must match."""
    return build_reference_model(str(tiny_model), ncpu=1)


@pytest.fixture(scope="session")
def app_server(
    model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcess]:
    """The real app, started the way a user starts it, on a free port."""
    logs = tmp_path_factory.mktemp("logs")
    env = {**model_env, "SENSEVOICE_MAX_UPLOAD_MB": "2", "SENSEVOICE_MAX_DURATION_S": "20",
           "SENSEVOICE_CACHE_URL": f"sqlite:///{logs}/cache.sqlite3"}  # fmt: skip
    with run_app(env, logs) as app:
        yield app


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port, without persistence; tests may stop and restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
