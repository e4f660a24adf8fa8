"""`scripts/supervisor.sh` as an operator first meets it: `start` returns once the app is
ready, and `status` never says "starting" about an app that answers /ready with "ready".

Supervisor calls a process STARTING for its first `startsecs` (60 s by default) whatever the
app is doing; the script used to print that beside "/ready: ready" for most of a minute, and
`start` printed "/ready: unreachable" because it looked right after launching. One app on the
tiny model, with the default startsecs, so status is read inside that window.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sensevoice_server.testing.servers import ROOT, free_port

SCRIPT = ROOT / "scripts" / "supervisor.sh"


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.fixture
def one_app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[dict[str, str], Path, str]]:  # fmt: skip
    directory = tmp_path_factory.mktemp("sup")  # short: a unix socket path has ~100 bytes
    port = free_port()
    env = {**os.environ, **model_env, "SENSEVOICE_PORT": str(port)}
    try:
        yield env, directory, f"http://127.0.0.1:{port}"
    finally:
        run(env, "stop", str(directory), timeout=120)


def test_start_waits_for_ready_and_status_agrees_with_it(
    one_app: tuple[dict[str, str], Path, str],
) -> None:
    env, directory, url = one_app
    started = time.monotonic()
    done = run(env, "start", str(directory), "--wait", "240", timeout=300)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    # start returned because the app is ready, not because it gave up looking
    assert httpx.get(f"{url}/ready", timeout=5).json()["status"] == "ready"
    assert f"{url}/ready: ready" in done.stdout, done.stdout
    assert "unreachable" not in done.stdout and "not ready after" not in done.stdout
    assert took < 240

    status = run(env, "status", str(directory))
    assert status.returncode == 0, status.stdout + status.stderr
    app_line = next(line for line in status.stdout.splitlines() if line.startswith("sensevoice"))
    assert " up " in app_line and app_line.endswith(f"{url}/ready: ready"), status.stdout
    assert "STARTING" not in app_line
    # still inside Supervisor's 60 s window: the one mention of STARTING says what it means
    supervisors_own = run(env, "ctl", str(directory), "status").stdout
    if "STARTING" in supervisors_own:
        assert "Supervisor calls that STARTING" in status.stdout


def test_start_stops_waiting_when_the_app_cannot_start_and_shows_why(
    one_app: tuple[dict[str, str], Path, str],
) -> None:
    """A model path that does not exist: the app exits in seconds, Supervisor gives up after
    its retries (FATAL), and start says so with the app's own message, instead of waiting
    out --wait or reporting success."""
    env, directory, _ = one_app
    env = {**env, "SENSEVOICE_MODEL": str(directory / "no-such-model")}
    started = time.monotonic()
    done = run(env, "start", str(directory), "--wait", "240", timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 120
    assert "FATAL" in done.stdout and "sensevoice failed to start" in done.stdout
    assert "no-such-model (SENSEVOICE_MODEL): no such directory." in done.stdout
