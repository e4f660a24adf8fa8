"""The end-to-end tier: the real app started as a user starts it, real clients, real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sensevoice_server.testing.servers import AppProcess, run_app
from sensevoice_server.testing.trained_model import write_trained
from tests.support.keys import KEYS


@pytest.fixture(scope="session")
def app_server(
    model_env: dict[str, str], tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcess]:
    """The real app, started the way a user starts it, on a free port, with the default
    backend (auto: onnx on a CPU) on the tiny checkpoint's export, in fp32; the other apps
    of this tier run the torch backend, so front ends are held to the reference on both."""
    logs = tmp_path_factory.mktemp("logs")
    env = {**model_env, "SENSEVOICE_BACKEND": "auto", "SENSEVOICE_ONNX_DIR": str(tiny_onnx),
           "SENSEVOICE_PRECISION": "fp32",  # the reference's exact transcript (int8: bench/)
           "SENSEVOICE_MAX_UPLOAD_MB": "2", "SENSEVOICE_MAX_BATCH_MB": "4",
           "SENSEVOICE_MAX_DURATION_S": "20",
           "SENSEVOICE_CACHE_URL": f"sqlite:///{logs}/cache.sqlite3"}  # fmt: skip
    with run_app(env, logs) as app:
        yield app


@pytest.fixture(scope="session")
def keyed_app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[AppProcess]:  # fmt: skip
    """An app with API keys (tests/support/keys.py) and room for one job at a time, which
    the access tests, the HTTP clients' and gradio_client's full-queue tests share."""
    env = {**model_env, "SENSEVOICE_API_KEYS": ",".join(KEYS), "SENSEVOICE_QUEUE_SIZE": "1",
           "SENSEVOICE_MAX_DURATION_S": "7200"}  # fmt: skip
    with run_app(env, tmp_path_factory.mktemp("keyed")) as app:
        yield app


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed trained test model, written out in funasr's layout."""
    return write_trained(tmp_path_factory.mktemp("trained") / "model")


@pytest.fixture(scope="session")
def trained_app(
    trained_dir: Path, model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcess]:
    """The real app on the trained test model (torch: no export to wait for), whose words
    can be checked: the trained-model and keyword tests share it."""
    env = {**model_env, "SENSEVOICE_MODEL": str(trained_dir), "SENSEVOICE_BACKEND": "torch"}
    with run_app(env, tmp_path_factory.mktemp("trained-app")) as app:
        yield app
