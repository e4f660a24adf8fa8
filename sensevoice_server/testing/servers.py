"""Start real processes for tests and benchmarks: the app (as a user runs it) on a free port,
and a throwaway Redis.

Tests talk to these over real sockets with real clients; nothing here is mocked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll `check()` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def is_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class AppProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_or_exited(self) -> bool:
        return is_ready(self.url) or self.process.poll() is not None


@contextmanager
def run_app(
    env: dict[str, str], log_dir: Path, *args: str, ready_timeout: float = 120
) -> Iterator[AppProcess]:
    """Run `python app_sensevoice.py` with SENSEVOICE_* settings, yield once it is ready."""
    with run_apps([env], log_dir, *args, ready_timeout=ready_timeout) as (app,):
        yield app


@contextmanager
def run_apps(
    envs: list[dict[str, str]], log_dir: Path, *args: str, ready_timeout: float = 120
) -> Iterator[list[AppProcess]]:
    """Several apps started together (one's imports overlap another's waits), yielded once
    every one is ready; each is stopped with SIGTERM afterwards, as Supervisor stops it."""
    apps = [start_app(env, log_dir, *args) for env in envs]
    try:
        for app in apps:
            if not wait_until(app.ready_or_exited, ready_timeout):
                raise RuntimeError(f"app did not become ready:\n{app.log()}")
            if app.process.poll() is not None:
                raise RuntimeError(f"app exited with {app.process.returncode}:\n{app.log()}")
        yield apps
    finally:
        for app in apps:
            if app.process.poll() is None:
                app.process.send_signal(signal.SIGTERM)
        for app in apps:
            try:
                app.process.wait(30)
            except subprocess.TimeoutExpired:
                app.process.kill()


def start_app(env: dict[str, str], log_dir: Path, *args: str) -> AppProcess:
    port = free_port()
    log_path = log_dir / f"app-{port}.log"
    full_env = {**os.environ, **env, "SENSEVOICE_PORT": str(port)}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app_sensevoice.py"), *args],
            cwd=ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return AppProcess(f"http://127.0.0.1:{port}", process, log_path)


class RedisServer:
    """A throwaway redis-server (no persistence) that a test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # No persistence: a restart comes back empty, like a fresh cache.
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
