"""A live stream costs what its audio costs, and a restart loses nothing it heard: the real app
on a real port, tried as an attacker and as an operator would.

One app serves most tests, with 2 live places and a 2 s idle limit (so also a 2 s deadline for
the config); the drain test starts its own, since SIGTERM ends it. The server's CPU time is
read from /proc/<pid>/stat and its memory from /proc/<pid>/status, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sensevoice_server.cli.stream import stream_samples
from sensevoice_server.live.protocol import pcm16_bytes
from sensevoice_server.testing.servers import AppProcess, run_app, wait_until
from tests.support.samples import load

CONFIG = json.dumps({"sample_rate": 16000, "format": "pcm_s16le"})


@pytest.fixture(scope="module")
def app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env = {**model_env, "SENSEVOICE_LIVE_MAX_SESSIONS": "2", "SENSEVOICE_LIVE_IDLE_TIMEOUT_S": "2"}
    with run_app(env, tmp_path_factory.mktemp("live-limits")) as app:
        yield app


# --- helpers --------------------------------------------------------------------------------
def ws_url(app: AppProcess) -> str:
    return app.url.replace("http://", "ws://") + "/ws/transcribe"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# The probe runs in a process of its own: a thread of the test would wait for the GIL behind
# the flooding client, and measure that instead of the server.
PROBE = """
import sys, time, httpx
with httpx.Client(timeout=30) as client:
    while True:
        started = time.perf_counter()
        client.get(sys.argv[1]).raise_for_status()
        print(time.perf_counter() - started, flush=True)
        time.sleep(0.05)
"""


@contextlib.contextmanager
def health_latencies(app: AppProcess) -> Iterator[list[float]]:
    """/health answer times (seconds), asked every 50 ms by another client meanwhile."""
    times: list[float] = []
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, f"{app.url}/health"], stdout=subprocess.PIPE, text=True
    )
    assert probe.stdout is not None
    probe.stdout.readline()  # it is asking
    try:
        yield times
    finally:
        probe.terminate()
        times += [float(line) for line in probe.stdout.read().split()]
        probe.wait(10)


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def speech_regions(samples: np.ndarray, min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """Where the clip is not digitally silent (the samples are espeak-ng sentences)."""
    loud = np.flatnonzero(np.abs(samples) > 1e-4)
    breaks = np.flatnonzero(np.diff(loud) > min_gap_s * 16000)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks], loud[-1]]
    return [(a / 16000, b / 16000) for a, b in zip(starts, ends, strict=True)]


def wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


# --- places ---------------------------------------------------------------------------------
def test_silent_connections_hold_no_live_place(app: AppProcess) -> None:
    """Eight sockets that never send a config used to take every place (there are 2 here)
    and refuse every real stream; a place is now taken only for a valid config, and a
    silent socket is closed once the config deadline (here the 2 s idle limit) passes."""
    silent = [connect(ws_url(app), open_timeout=10) for _ in range(8)]
    try:
        messages = asyncio.run(stream_samples(ws_url(app), load("en.wav"), speed=0))
        assert len([m for m in messages if m["type"] == "final"]) == 2
        for ws in silent:
            assert json.loads(ws.recv(timeout=10))["code"] == "idle_timeout"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
            assert ws.close_code == 1008
    finally:
        for ws in silent:
            ws.close()


# --- too slow -------------------------------------------------------------------------------
def test_a_trickle_is_closed_as_idle(app: AppProcess) -> None:
    """Two bytes every half second reset the old idle timer forever; a stream must now keep
    sending audio at half of real time, so this one is idle when the 2 s window ends."""
    with connect(ws_url(app), open_timeout=10) as ws:
        ws.send(CONFIG)
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        started, messages = time.monotonic(), []
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() - started < 15:
                ws.send(b"\x00\x00")
                with contextlib.suppress(TimeoutError):
                    messages.append(json.loads(ws.recv(timeout=0.5)))
        closed_after = time.monotonic() - started
        # the server's last message may arrive between a recv's timeout and the next send,
        # which then fails on the closed connection: it is still waiting to be read
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                messages.append(json.loads(ws.recv(timeout=1)))
    assert messages[-1]["code"] == "idle_timeout" and ws.close_code == 1008, messages
    assert 1.5 < closed_after < 5


# --- too fast -------------------------------------------------------------------------------
async def flood(app: AppProcess, frames_per_s: int, seconds: float) -> tuple[list[dict], int]:
    """One-sample frames at `frames_per_s` until `seconds` pass or the server closes."""
    async with async_connect(ws_url(app), ping_timeout=None) as ws:
        await ws.send(CONFIG)
        json.loads(await ws.recv())
        started, sent = time.monotonic(), 0
        with contextlib.suppress(ConnectionClosed):
            while (now := time.monotonic()) - started < seconds:
                while sent < (now - started) * frames_per_s:
                    await ws.send(b"\x10\x00")
                    sent += 1
                await asyncio.sleep(0)
        messages = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(30):
                async for raw in ws:
                    messages.append(json.loads(raw))
        assert ws.close_code is not None
        return messages, ws.close_code


def test_a_flood_of_tiny_frames_is_closed_at_once_and_costs_little(app: AppProcess) -> None:
    """70,000 one-sample frames a second for 5 s used to cost about 40 s of server CPU, with
    `done` 40 s after `end`. Each frame now counts as at least 5 ms of audio against the
    stream's pace (4x real time after a minute ahead), so the flood is closed within a
    fraction of a second, and /health, asked meanwhile by another client, stays fast."""
    pid = app.process.pid
    cpu_before = cpu_seconds(pid)
    with health_latencies(app) as latencies:
        started = time.monotonic()
        messages, code = asyncio.run(flood(app, 70_000, 5.0))
        took = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    assert messages[-1]["code"] == "too_fast" and code == 1008, messages
    assert "real time" in messages[-1]["reason"]
    assert took < 8 and cpu < 6, (took, cpu)
    assert p95(latencies) < 0.5, sorted(latencies)[-5:]  # generous: two busy cores


# --- the Live tab ---------------------------------------------------------------------------
def test_the_live_tab_refuses_a_low_declared_rate_at_once(app: AppProcess) -> None:
    """The Live tab's event, called through Gradio's queue API as an attacker would (no key
    is needed for it), with a 20 KB WAV chunk whose header claims 10 Hz: it used to become
    16 million samples (17 s of CPU, +370 MB); it is now refused before any work."""
    pid = app.process.pid
    config = httpx.get(f"{app.url}/config").json()
    stream_event = next(
        dependency.get("id", index)
        for index, dependency in enumerate(config["dependencies"])
        if any(target[1] == "stream" for target in dependency.get("targets") or [])
    )
    chunk = wav_bytes(10, np.random.default_rng(0).integers(-3000, 3000, 10_000))
    cpu_before, memory_before = cpu_seconds(pid), resident_mb(pid)
    with httpx.Client(base_url=f"{app.url}/gradio_api", timeout=60) as client:
        uploaded = client.post("/upload", files={"files": ("chunk.wav", chunk, "audio/wav")})
        file = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
        started = time.monotonic()
        joined = client.post(
            "/queue/join",
            json={"data": [file, "auto", True, None, ""], "fn_index": stream_event,
                  "session_hash": "low-rate", "event_data": None, "trigger_id": None},
        )  # fmt: skip
        assert joined.status_code == 200, joined.text
        completed = None
        with client.stream("GET", "/queue/data", params={"session_hash": "low-rate"}) as events:
            for line in events.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("msg") == "process_completed":
                        completed = event
                        break
        took = time.monotonic() - started
    assert completed is not None and completed["success"] is False, completed
    assert "10 Hz" in completed["output"]["error"], completed
    assert took < 5 and cpu_seconds(pid) - cpu_before < 2
    assert resident_mb(pid) - memory_before < 50
    assert wait_until(lambda: httpx.get(f"{app.url}/health").json()["live_sessions"] == 0, 5)


# --- the drain ------------------------------------------------------------------------------
CLIPS = {"en.wav": 4.0, "zh.wav": 2.0, "ja.wav": 3.6}  # seconds sent: each ends mid-sentence


def test_sigterm_gives_every_live_stream_the_finals_of_what_it_sent(
    model_env: dict[str, str], tmp_path: Path
) -> None:
    """Three streams have sent speech, the last of it an open utterance, and no `end`. On
    SIGTERM each used to be closed at once (1012), its open utterance lost. Now each gets
    finals covering everything it sent, then the reason and 1001, and the process exits."""
    env = {**model_env, "SENSEVOICE_LIVE_IDLE_TIMEOUT_S": "30"}
    with run_app(env, tmp_path) as app:
        sockets = {name: connect(ws_url(app), open_timeout=10) for name in CLIPS}
        sent = {name: load(name)[: int(seconds * 16000)] for name, seconds in CLIPS.items()}
        for name, ws in sockets.items():
            ws.send(CONFIG)
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            pcm = pcm16_bytes(sent[name])
            for offset in range(0, len(pcm), 3200):  # 100 ms frames, as fast as they go
                ws.send(pcm[offset : offset + 3200])
        time.sleep(1.5)  # the server has taken every frame
        app.process.send_signal(signal.SIGTERM)
        received = {}
        for name, ws in sockets.items():
            messages = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    messages.append(json.loads(ws.recv(timeout=30)))
            received[name] = (messages, ws.close_code)
        assert app.process.wait(30) == 0
    for name, (messages, code) in received.items():
        assert messages[-1]["code"] == "shutting_down" and code == 1001, (name, messages)
        finals = [m for m in messages if m["type"] == "final"]
        for start, end in speech_regions(sent[name]):  # every sentence heard is in a final
            assert any(f["start"] <= start + 0.1 and f["end"] >= end - 0.1 for f in finals), (
                name, (start, end), finals,
            )  # fmt: skip
        assert finals[-1]["end"] == pytest.approx(CLIPS[name], abs=0.05), (name, finals)
