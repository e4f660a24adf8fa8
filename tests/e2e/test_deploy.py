"""Deployment as a user runs it: scripts/supervisor.sh, Supervisor, nginx and Redis, for real.

One supervisord (started by the script from the repo's templates) keeps two replicas of the
app on the tiny model, a Redis they share as their cache, and nginx in front of them. The
tests talk to nginx and to each replica over real sockets, then kill, stop and restart the
replicas the way production does, and check what clients see meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from sensevoice_server.settings import Settings
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import ROOT, free_port, is_ready, wait_until
from tests.support.samples import SAMPLES

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
REDIS = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin")
pytestmark = pytest.mark.skipif(
    not (NGINX and REDIS),
    reason="needs nginx and redis-server (Debian: apt-get install nginx redis-server)",
)

SCRIPT = ROOT / "scripts" / "supervisor.sh"
REPLICAS = 2
MAX_UPLOAD_MB = 1
# Generous: on a busy two-core machine the app takes ~25 s from exec to ready (imports and
# model load); Supervisor adds well under a second.
READY_TIMEOUT = 180


# --- audio made for these tests -----------------------------------------------------------
def _speech() -> np.ndarray:
    with wave.open(str(SAMPLES / "en.wav")) as clip:
        assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")


def long_clip(seconds: float, variant: int) -> bytes:
    """en.wav tiled to `seconds`, as a small 8 kHz 8-bit WAV so it fits the 1 MB limit.

    Each `variant` differs by one sample: the result cache must not answer it from an
    earlier one, or it would not be in flight in the model's queue.
    """
    speech = _speech()[::2]  # 16 kHz -> 8 kHz; quality is no concern for a random model
    samples = np.tile(speech, int(seconds * 8000 / len(speech)) + 1)[: int(seconds * 8000)]
    pcm = (samples // 256 + 128).astype(np.uint8)
    pcm[0] = variant % 256
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(1)
        clip.setframerate(8000)
        clip.writeframes(pcm.tobytes())
    return out.getvalue()


def unique_noise() -> bytes:
    """Half a second of noise never sent before: a cache miss that the model must see."""
    return wav_bytes(np.random.default_rng().normal(0, 0.03, 8000))


def transcribe(url: str, data: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{url}/api/transcribe", files={"file": ("clip.wav", data)}, timeout=timeout)


# --- the deployment -------------------------------------------------------------------------
@dataclass
class Deployment:
    dir: Path
    env: dict[str, str]
    apps: list[str]  # each replica's own URL
    nginx: str
    startup_s: float = 0.0  # from `start` to every replica ready

    def script(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0 or not check, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    def process(self, app: str) -> str:
        return f"sensevoice:sensevoice_{app.rsplit(':', 1)[1]}"

    def pid(self, app: str) -> int:
        """The replica's pid as Supervisor knows it; 0 while it is not running."""
        out = self.script("ctl", str(self.dir), "pid", self.process(app), check=False)
        return int(out.strip() or 0)

    def log(self, app: str) -> str:
        port = app.rsplit(":", 1)[1]
        return (self.dir / "logs" / f"sensevoice_{port}.log").read_text(errors="replace")

    def nginx_log(self) -> str:
        return (self.dir / "logs" / "nginx.log").read_text(errors="replace")

    def transcriptions_served(self) -> list[int]:
        """How many /api/transcribe requests each replica has logged (one JSON line each)."""
        return [self.log(app).count('"path": "/api/transcribe"') for app in self.apps]

    def wait_in_rotation(self, timeout: float = 30) -> None:
        """Until nginx sends work to every replica again (a failed one waits fail_timeout)."""
        before = self.transcriptions_served()

        def all_served() -> bool:
            assert transcribe(self.nginx, unique_noise()).status_code == 200
            return all(a > b for a, b in zip(self.transcriptions_served(), before, strict=True))

        assert wait_until(all_served, timeout, 0.2), "nginx does not use every replica"

    def wait_ready(self, *apps: str, timeout: float = READY_TIMEOUT) -> None:
        for app in apps or self.apps:
            assert wait_until(lambda app=app: is_ready(app), timeout, 0.2), (
                f"{app} not ready:\n{self.log(app)[-3000:]}"
            )


def consecutive_free_ports(count: int) -> int:
    for _ in range(100):
        base = free_port()
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no consecutive free ports")


def _stop(directory: Path, env: dict[str, str]) -> None:
    """The script's stop, and if that fails, SIGKILL for supervisord and its children."""
    try:
        subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, timeout=120, check=True)
        return
    except (subprocess.SubprocessError, OSError):
        pass
    try:
        pid = int((directory / "supervisord.pid").read_text())
    except (OSError, ValueError):
        return
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    for victim in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(
    model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Two replicas, Redis and nginx under one supervisord, started by scripts/supervisor.sh."""
    directory = tmp_path_factory.mktemp("sv")  # short: a unix socket path has ~100 bytes
    base, redis_port, nginx_port = consecutive_free_ports(REPLICAS), free_port(), free_port()
    env = {
        **os.environ,
        **model_env,
        "SENSEVOICE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "SENSEVOICE_MAX_DURATION_S": "600",
    }
    # --with-redis points the cache at Redis unless told otherwise: let it
    env.pop("SENSEVOICE_CACHE_URL", None)
    deployment = Deployment(
        directory,
        env,
        [f"http://127.0.0.1:{base + i}" for i in range(REPLICAS)],
        f"http://127.0.0.1:{nginx_port}",
    )
    started = time.monotonic()
    try:
        # startsecs 3: the tiny model loads in seconds, and a replica killed while still
        # STARTING would count as a failed start (the default, 60 s, covers a real model).
        deployment.script(
            "start", str(directory), "--replicas", str(REPLICAS), "--base-port", str(base),
            "--with-redis", "--redis-port", str(redis_port),
            "--with-nginx", f"127.0.0.1:{nginx_port}", "--startsecs", "3",
            "--wait", str(READY_TIMEOUT), timeout=READY_TIMEOUT + 30,  # start waits for /ready
        )  # fmt: skip
        deployment.wait_ready()
        deployment.startup_s = time.monotonic() - started
        print(f"\n[deploy] {REPLICAS} replicas ready {deployment.startup_s:.1f} s after start")
        yield deployment
    finally:
        _stop(directory, env)


# --- the rendered configs -------------------------------------------------------------------
@pytest.mark.parametrize("replicas", [0, 2])
def test_program_config_lists_every_setting(
    model_env: dict[str, str], tmp_path: Path, replicas: int
) -> None:
    """Rendered as Supervisor reads it: the app's command, every setting, drain-long stop.

    When a setting is added to settings.py, add it to both deploy/supervisor/sensevoice*.conf.
    """
    from supervisor.options import ServerOptions

    env = {
        **os.environ,
        **model_env,
        "SENSEVOICE_PORT": "7999",
        "SENSEVOICE_DRAIN_TIMEOUT_S": "30",
        "SENSEVOICE_API_KEYS": "secret-key",
    }
    options = ["--replicas", str(replicas), "--base-port", "7001"] if replicas else []
    subprocess.run(
        [str(SCRIPT), "render", str(tmp_path), *options], env=env, check=True, timeout=60
    )
    config = ServerOptions()
    config.realize(args=["-c", str(tmp_path / "supervisord.conf")])
    [group] = config.process_group_configs
    ports = [program.environment["SENSEVOICE_PORT"] for program in group.process_configs]
    assert ports == (["7001", "7002"] if replicas else ["7999"])
    for program in group.process_configs:
        assert program.command == f"{ROOT}/.venv/bin/python {ROOT}/app_sensevoice.py"
        assert program.autostart and program.autorestart is not False
        assert program.stopsignal == signal.SIGTERM
        assert program.stopwaitsecs == 30 + 60  # the drain, then uvicorn's graceful close
        assert program.environment["SENSEVOICE_MODEL"] == model_env["SENSEVOICE_MODEL"]
        # every setting is written out, so the file documents the deployment; secrets are not
        written = {name for name in program.environment if name.startswith("SENSEVOICE_")}
        settings = {f"SENSEVOICE_{name.upper()}" for name in Settings.model_fields}
        left_out = {"SENSEVOICE_API_KEYS", "SENSEVOICE_UI_AUTH", "SENSEVOICE_UI_PUBLIC",
                    "SENSEVOICE_DECODE_CONCURRENCY", "SENSEVOICE_ONNX_DIR",
                    "SENSEVOICE_CALIBRATION_AUDIO"}  # fmt: skip
        assert settings - written == left_out
        assert written <= settings, "the template sets a variable the app does not know"
    assert "secret-key" not in (tmp_path / "programs" / "sensevoice.conf").read_text()


def test_nginx_config_passes_nginx_t(cluster: Deployment) -> None:
    done = subprocess.run(
        [NGINX, "-p", str(cluster.dir / "nginx"), "-c", "nginx.conf", "-e", "stderr", "-t"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    site = (cluster.dir / "nginx" / "sensevoice.conf").read_text()
    assert f"client_max_body_size {MAX_UPLOAD_MB * 1_000_000};" in site


# --- several replicas behind nginx ----------------------------------------------------------
def test_requests_are_spread_over_the_replicas(cluster: Deployment) -> None:
    cluster.wait_ready()
    before = cluster.transcriptions_served()
    for _ in range(6):
        answer = transcribe(cluster.nginx, (SAMPLES / "en.wav").read_bytes())
        assert answer.status_code == 200, answer.text

    def served() -> list[int]:
        return [b - a for a, b in zip(before, cluster.transcriptions_served(), strict=True)]

    # each line is logged after its answer is sent, then copied by supervisord: allow a moment
    assert wait_until(lambda: sum(served()) == 6, 10), served()
    assert all(count >= 2 for count in served()), served()
    # nginx's own access log names the replica that answered each request
    upstreams = re.findall(
        r'"POST /api/transcribe [^"]*" 200 .* upstream=(\S+)', cluster.nginx_log()
    )
    assert set(upstreams[-6:]) == {app.removeprefix("http://") for app in cluster.apps}


def test_a_result_cached_through_one_replica_is_a_hit_through_the_other(
    cluster: Deployment,
) -> None:
    cluster.wait_ready()
    data = long_clip(12, variant=7)  # sent by no other test
    first, second = cluster.apps
    miss = transcribe(first, data)
    assert miss.status_code == 200 and miss.json()["from_cache"] is False
    hit = transcribe(second, data)
    assert hit.status_code == 200 and hit.json()["from_cache"] is True
    assert hit.json()["text"] == miss.json()["text"]
    through_nginx = transcribe(cluster.nginx, data)
    assert through_nginx.json()["from_cache"] is True


def test_gradio_sessions_stick_to_one_replica(cluster: Deployment) -> None:
    """Gradio keeps its queue and uploads in the process: a session must not change replica."""
    from gradio_client import Client, handle_file

    cluster.wait_ready()
    for _ in range(3):
        client = Client(cluster.nginx, verbose=False)
        assert "sensevoice_replica" in client.cookies
        try:
            rich, _ = client.predict(
                handle_file(str(SAMPLES / "en.wav")), "auto", True, api_name="/transcribe"
            )
        finally:
            client.close()  # its heartbeat stream would hold the replica's shutdown up
        assert rich
        session = client.session_hash
        used = set(
            re.findall(rf"/gradio_api/\S*{session}\S* .* upstream=(\S+)", cluster.nginx_log())
        )
        assert len(used) == 1, used


def test_live_streams_with_the_same_session_id_reach_the_same_replica(
    cluster: Deployment,
) -> None:
    """nginx passes the WebSocket upgrade, and ?session_id= pins a stream to one replica."""
    from websockets.sync.client import connect

    cluster.wait_ready()
    url = cluster.nginx.replace("http://", "ws://") + "/ws/transcribe?session_id="
    session = f"sticky-{time.monotonic_ns()}"
    config = {"sample_rate": 16000, "format": "pcm_s16le", "session_id": session}
    first_segments = []
    for _ in range(3):  # the same session reconnecting
        with connect(url + session, open_timeout=10) as stream:
            stream.send(json.dumps(config))
            ready = json.loads(stream.recv(timeout=10))
            assert ready["type"] == "ready", ready
            first_segments.append(ready["next_segment"])
            stream.send(_speech().tobytes())
            stream.send(json.dumps({"type": "end"}))
            while json.loads(stream.recv(timeout=30))["type"] != "done":
                pass
    # the replica that kept the session numbers on from where the last connection ended
    assert first_segments == sorted(first_segments), first_segments

    def upstreams() -> list[str]:
        return re.findall(rf"/ws/transcribe\?session_id={session} \S+ 101 .* upstream=(\S+)",
                          cluster.nginx_log())  # fmt: skip

    # nginx logs a WebSocket when it closes
    assert wait_until(lambda: len(upstreams()) == 3, 10), upstreams()
    assert len(set(upstreams())) == 1, upstreams()


def test_an_upload_over_the_limit_gets_the_same_answer_from_nginx_and_the_app(
    cluster: Deployment,
) -> None:
    """nginx refuses it before a replica sees a byte, in the app's own words and shape.

    nginx's client_max_body_size counts the whole multipart body; the app counts the file
    alone. The thresholds differ by the multipart overhead (a few hundred bytes), the
    answers do not.
    """
    cluster.wait_ready()
    too_big = np.random.default_rng(0).bytes(MAX_UPLOAD_MB * 1_000_000 + 50_000)
    from_nginx = transcribe(cluster.nginx, too_big)
    from_app = transcribe(cluster.apps[0], too_big)
    assert from_nginx.status_code == from_app.status_code == 413
    assert from_nginx.headers["content-type"].startswith("application/json")
    assert from_nginx.headers["server"] == "nginx"  # refused at the door, not by a replica
    assert from_nginx.json() == from_app.json()
    assert from_app.json()["error"] == {
        "message": f"The file is larger than the limit of {MAX_UPLOAD_MB} MB.",
        "type": "invalid_request_error",
        "param": None,
        "code": "file_too_large",
    }


# --- graceful restarts and crashes ----------------------------------------------------------
def _status(call) -> int | str:
    """The answer's status, or how the connection failed ("refused": nothing on the port)."""
    try:
        return call().status_code
    except httpx.ConnectError:
        return "refused"
    except httpx.HTTPError as error:
        return type(error).__name__


def test_sigterm_drains_in_flight_work_then_supervisor_brings_the_replica_back(
    cluster: Deployment,
) -> None:
    """A rolling restart of one replica, seen from both sides.

    Straight to the replica: transcriptions in flight finish with 200; new ones get 503
    (never a refused connection) while it drains; then comes a window with nothing on the
    port (the old process has closed it, the new one is still importing), then 503 while
    the model loads, then 200. Through nginx: every request succeeds all along.
    """
    cluster.wait_ready()
    app = cluster.apps[0]
    old_pid = cluster.pid(app)
    clips = [long_clip(110, variant=i) for i in range(3)]
    finished: list[float] = []

    def send(clip: bytes) -> httpx.Response:
        try:
            return transcribe(app, clip)
        finally:
            finished.append(time.monotonic())

    direct: list[tuple[float, int | str]] = []  # (when sent, status) straight to the replica
    via_nginx: list[int | str] = []
    with ThreadPoolExecutor(len(clips)) as pool:
        in_flight = [pool.submit(send, clip) for clip in clips]
        assert wait_until(
            lambda: httpx.get(f"{app}/health").json()["queue_depth"] == len(clips), 60, 0.05
        ), "the long transcriptions never reached the model's queue"
        signalled = time.monotonic()
        os.kill(old_pid, signal.SIGTERM)  # as `supervisorctl restart` would, then autorestart
        while time.monotonic() < signalled + READY_TIMEOUT:
            sent = time.monotonic()
            direct.append((sent, _status(lambda: transcribe(app, unique_noise(), timeout=30))))
            via_nginx.append(_status(lambda: transcribe(cluster.nginx, unique_noise())))
            if direct[-1][1] == 200 and cluster.pid(app) not in (0, old_pid):
                break
            time.sleep(0.1)
        answers = [future.result() for future in in_flight]

    assert [answer.status_code for answer in answers] == [200] * len(clips), answers
    assert all(answer.json()["text"] for answer in answers)
    assert set(via_nginx) == {200}, via_nginx
    # 503 while draining, refused between the two processes, 503 while loading, then 200:
    # one letter per request sent straight to the replica
    # (a request that reaches the port in the instant the old process closes it may have its
    # connection taken and then closed unanswered, "C": only there, between D and R; closed
    # cleanly, httpx says RemoteProtocolError, reset from the listen queue, ReadError)
    codes = {503: "D", "refused": "R", 200: "K", "RemoteProtocolError": "C", "ReadError": "C"}
    letters = "".join(codes.get(s, "?") for _, s in direct)
    assert re.fullmatch(r"D+C?R*D*K", letters), f"{letters}: {[s for _, s in direct]}"
    refused = [sent for sent, status in direct if status == "refused"]
    drained = max(finished)
    # The old process closes its port once its jobs are done, just before their answers
    # reach us; never while jobs are still running.
    assert not refused or refused[0] > drained - 1.0, (refused[0] - signalled, drained - signalled)
    window = refused[-1] - refused[0] if refused else 0.0
    print(
        f"\n[deploy] SIGTERM: {len(clips)} jobs drained {drained - signalled:.1f} s after the "
        f"signal; port refused for {window:.1f} s ({len(refused)} requests); ready again "
        f"{direct[-1][0] - signalled:.1f} s after the signal; {len(via_nginx)} requests via "
        "nginx meanwhile, all 200"
    )
    assert "SIGTERM: draining 3 job(s)" in cluster.log(app)


def test_kill_9_of_a_replica_is_invisible_through_nginx_and_supervisor_restarts_it(
    cluster: Deployment,
) -> None:
    cluster.wait_ready()
    cluster.wait_in_rotation()  # after the rolling restart above
    app = cluster.apps[1]
    old_pid = cluster.pid(app)
    killed = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    # nginx fails over on the refused connection; no request is lost meanwhile
    for _ in range(6):
        answer = transcribe(cluster.nginx, unique_noise())
        assert answer.status_code == 200, answer.text
    # Supervisor restarts it with no manual step; it is ready once the model is loaded again
    assert wait_until(lambda: cluster.pid(app) not in (0, old_pid), 30, 0.1)
    cluster.wait_ready(app)
    back = time.monotonic() - killed
    print(f"\n[deploy] kill -9: ready again {back:.1f} s later (start: {cluster.startup_s:.1f} s)")
    assert back < cluster.startup_s + 15
    answer = transcribe(app, (SAMPLES / "en.wav").read_bytes())
    assert answer.status_code == 200 and answer.json()["text"]
    supervisor_log = (cluster.dir / "logs" / "supervisord.log").read_text()
    assert "terminated by SIGKILL; not expected" in supervisor_log


def test_stop_drains_and_leaves_nothing_running(cluster: Deployment) -> None:
    """Runs last: `stop` ends every program gracefully (the app with exit 0), then itself."""
    cluster.wait_ready()
    pids = [cluster.pid(app) for app in cluster.apps]
    supervisord = int((cluster.dir / "supervisord.pid").read_text())
    stopped = time.monotonic()
    cluster.script("stop", str(cluster.dir), timeout=240)
    print(f"\n[deploy] stop took {time.monotonic() - stopped:.1f} s")
    for pid in [*pids, supervisord]:
        assert not _alive(pid)
    assert not any(is_ready(app) for app in cluster.apps)
    log = (cluster.dir / "logs" / "supervisord.log").read_text()
    for app in cluster.apps:
        name = cluster.process(app).split(":")[1]
        assert f"stopped: {name} (exit status 0)" in log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
