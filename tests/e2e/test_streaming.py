"""Live transcription: the real app on a real port, spoken to by real WebSocket clients.

One app serves the module, with an API key, at most 2 live sessions and a 2 s idle timeout,
so the limits are quick to reach. Clips are streamed with the CLI's own client
(`cli.stream_samples`) unless a test needs to send something a good client never would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from sensevoice_server.cli.stream import stream_samples
from sensevoice_server.live.protocol import pcm16_bytes
from sensevoice_server.testing.servers import ROOT, AppProcess, run_app, wait_until
from tests.support.samples import SAMPLES, SPEECH_SAMPLES, load, resampled

KEY = "live-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONFIG = json.dumps({"sample_rate": 16000, "format": "pcm_s16le"})
END = json.dumps({"type": "end"})


@pytest.fixture(scope="module")
def app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env = {
        **model_env,
        "SENSEVOICE_API_KEYS": KEY,
        "SENSEVOICE_LIVE_MAX_SESSIONS": "2",
        "SENSEVOICE_LIVE_IDLE_TIMEOUT_S": "2",
        "SENSEVOICE_MAX_DURATION_S": "600",
        "SENSEVOICE_MAX_UPLOAD_MB": "20",
        "SENSEVOICE_CACHE_URL": "none",
    }
    with run_app(env, tmp_path_factory.mktemp("live")) as app:
        yield app


# --- helpers --------------------------------------------------------------------------------
def ws_url(app: AppProcess) -> str:
    return app.url.replace("http://", "ws://") + "/ws/transcribe"


def stream(app: AppProcess, samples: np.ndarray, **options) -> list[tuple[float, dict]]:
    """Stream with the CLI's client; every message with the audio clock when it arrived."""
    got: list[tuple[float, dict]] = []
    asyncio.run(
        stream_samples(
            ws_url(app), samples, api_key=KEY, on_message=lambda m, c: got.append((c, m)), **options
        )
    )
    return got


def finals(got: list[tuple[float, dict]]) -> list[dict]:
    return [message for _, message in got if message["type"] == "final"]


def speech_regions(samples: np.ndarray, min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """Where the clip is not digitally silent (the samples are espeak-ng sentences)."""
    loud = np.flatnonzero(np.abs(samples) > 1e-4)
    breaks = np.flatnonzero(np.diff(loud) > min_gap_s * 16000)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks], loud[-1]]
    return [(a / 16000, b / 16000) for a, b in zip(starts, ends, strict=True)]


def exchange(app: AppProcess, *frames: str | bytes, url: str | None = None):
    """Send frames as a raw client; return (messages received, close code)."""
    messages: list[dict] = []
    with connect(url or ws_url(app), additional_headers=AUTH, open_timeout=10) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close before we are done
            for frame in frames:
                ws.send(frame)
        with contextlib.suppress(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=15)))
    return messages, ws.close_code


def live_sessions(app: AppProcess) -> float:
    text = httpx.get(f"{app.url}/metrics").text
    found = re.search(r"^sensevoice_live_sessions (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def no_live_sessions(app: AppProcess) -> bool:
    return wait_until(lambda: live_sessions(app) == 0, 10)


# --- results --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPEECH_SAMPLES)
def test_speech_streamed_fast_gives_ordered_tagged_finals_covering_the_speech(
    app: AppProcess, name: str
) -> None:
    samples = load(name)
    got = stream(app, samples, speed=10)
    results = finals(got)
    assert got[0][1]["type"] == "ready" and got[-1][1] == {"type": "done"}
    assert [f["segment"] for f in results] == list(range(len(results)))
    assert all(f["start"] < f["end"] <= len(samples) / 16000 + 0.001 for f in results)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(results))
    assert all(f["text"] and f["language"] and f["emotion"] for f in results)
    for start, end in speech_regions(samples):  # each sentence lies within one final
        assert any(f["start"] <= start + 0.1 and f["end"] >= end - 0.1 for f in results), (
            (start, end),
            results,
        )


def test_real_time_stream_gives_partials_then_finals_soon_after_each_utterance(
    app: AppProcess,
) -> None:
    got = stream(app, load("en.wav"), speed=1.0)
    results = finals(got)
    assert [(round(f["start"], 1), round(f["end"], 1)) for f in results] == [
        (0.2, 2.3),
        (3.2, 5.4),
    ]
    for final in results:
        arrived = next(c for c, m in got if m is final)
        assert arrived - final["end"] < 1.5, got  # 0.5 s of silence ends it, then one decode
    partials = [(c, m) for c, m in got if m["type"] == "partial"]
    assert any(m["segment"] == 0 for _, m in partials), got
    for (c1, m1), (c2, m2) in itertools.pairwise(partials):
        if m1["segment"] == m2["segment"]:
            assert c2 - c1 >= 0.5, partials  # rate-limited: at most one every 0.8 s
    order = [(m["type"], m.get("segment")) for _, m in got]
    for final in results:  # a final replaces its partials for good
        after = order[order.index(("final", final["segment"])) :]
        assert ("partial", final["segment"]) not in after


def test_chunk_size_does_not_change_the_finals(app: AppProcess) -> None:
    samples = load("en.wav")
    runs = [finals(stream(app, samples, speed=0, chunk_ms=ms)) for ms in (10, 100, 2000)]
    reference = runs[0]
    assert len(reference) == 2
    for run in runs[1:]:
        assert len(run) == len(reference)
        for a, b in zip(run, reference, strict=True):
            assert abs(a["start"] - b["start"]) <= 0.05 and abs(a["end"] - b["end"]) <= 0.05
            assert a["text"] == b["text"]


@pytest.mark.parametrize(("rate", "fmt"), [(48000, "f32le"), (8000, "pcm_s16le")])
def test_other_sample_rates_are_resampled(app: AppProcess, rate: int, fmt: str) -> None:
    samples = resampled(load("en.wav"), rate)
    data = samples.astype("<f4").tobytes() if fmt == "f32le" else pcm16_bytes(samples)
    config = json.dumps({"sample_rate": rate, "format": fmt, "language": "en"})
    step = rate // 10 * (4 if fmt == "f32le" else 2)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    messages, code = exchange(app, config, *chunks, END)
    results = [m for m in messages if m["type"] == "final"]
    assert code == 1000 and messages[-1] == {"type": "done"}
    assert [(round(f["start"], 1), round(f["end"], 1)) for f in results] == [
        (0.2, 2.3),
        (3.2, 5.4),
    ]
    assert {f["language"] for f in results} == {"en"}


def test_silence_gives_no_final_just_done(app: AppProcess) -> None:
    got = stream(app, load("silence.wav"), speed=0)
    assert [m["type"] for _, m in got] == ["ready", "done"]


def test_finals_carry_token_logprobs_when_the_config_asks(app: AppProcess) -> None:
    """`logprobs: true` in the config: each final lists its tokens' log-probabilities (what
    the realtime route's include turns into OpenAI's logprobs); without it, finals have none."""
    asked = finals(stream(app, load("en.wav"), speed=4.0, logprobs=True))
    plain = finals(stream(app, load("en.wav"), speed=4.0))
    assert asked and all(m["logprobs"] and all(t["logprob"] <= 0 for t in m["logprobs"])
                         for m in asked)  # fmt: skip
    assert plain and all("logprobs" not in m for m in plain)


# --- refusals -------------------------------------------------------------------------------
BAD_INPUTS = {
    "config not JSON": (["hello"], "invalid_config", 1008),
    "config without format": ([json.dumps({"sample_rate": 16000})], "invalid_config", 1008),
    "unknown format": (
        [json.dumps({"sample_rate": 16000, "format": "mp3"})],
        "invalid_config",
        1008,
    ),
    "misspelt field": (
        [json.dumps({"samplerate": 16000, "format": "pcm_s16le"})],
        "invalid_config",
        1008,
    ),
    "audio before config": ([b"\x00\x00" * 100], "invalid_config", 1008),
    "unsupported sample rate": (
        [json.dumps({"sample_rate": 12345, "format": "pcm_s16le"})],
        "unsupported_sample_rate",
        1003,
    ),
    "odd bytes for s16le": ([CONFIG, b"\x00" * 1001], "invalid_audio", 1003),
    "NaN in f32le": (
        [
            json.dumps({"sample_rate": 16000, "format": "f32le"}),
            np.full(64, np.nan, "<f4").tobytes(),
        ],
        "invalid_audio",
        1003,
    ),
    "text mid-stream": ([CONFIG, b"\x00\x00" * 1600, '{"type": "stop"}'], "invalid_message", 1003),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_an_error_message_and_a_close_code(app: AppProcess, case: str) -> None:
    frames, error_code, close_code = BAD_INPUTS[case]
    messages, code = exchange(app, *frames)
    assert messages[-1]["type"] == "error", messages
    assert messages[-1]["code"] == error_code and messages[-1]["reason"]
    assert code == close_code


def test_api_key_is_checked_before_the_upgrade(app: AppProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(ws_url(app), additional_headers=headers),
        ):
            pass
        assert refused.value.response.status_code == 401
        assert b"invalid_api_key" in refused.value.response.body
    with connect(f"{ws_url(app)}?api_key={KEY}") as ws:  # what a browser can do
        ws.send(CONFIG)
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"


def test_a_client_that_vanishes_mid_utterance_is_cleaned_up(app: AppProcess) -> None:
    assert no_live_sessions(app)
    ws = connect(ws_url(app), additional_headers=AUTH)
    ws.send(CONFIG)
    ws.send(pcm16_bytes(load("en.wav")[: 16000 * 3 // 2]))  # stop in the middle of a sentence
    assert wait_until(lambda: live_sessions(app) == 1, 5)
    ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the client just disappears
    ws.socket.close()
    assert no_live_sessions(app)


def test_sessions_over_the_limit_are_refused_with_try_again_later(app: AppProcess) -> None:
    assert no_live_sessions(app)
    first, second = (connect(ws_url(app), additional_headers=AUTH) for _ in range(2))
    with first, second:
        for ws in (first, second):
            ws.send(CONFIG)
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        messages, code = exchange(app, CONFIG)
        assert code == 1013 and messages[-1]["code"] == "too_many_sessions"
    assert no_live_sessions(app)
    messages, code = exchange(app, CONFIG, END)
    assert code == 1000


def test_an_idle_stream_is_closed(app: AppProcess) -> None:
    started = time.monotonic()
    messages, code = exchange(app, CONFIG, b"\x00\x00" * 1600)  # then nothing for 2 s
    assert messages[-1]["code"] == "idle_timeout" and code == 1008
    assert 1.9 < time.monotonic() - started < 6
    messages, code = exchange(app)  # not even a config
    assert messages[-1]["code"] == "idle_timeout" and code == 1008


def test_a_stream_that_goes_idle_mid_utterance_still_gets_its_final(app: AppProcess) -> None:
    half = pcm16_bytes(load("en.wav")[: 16000 * 3 // 2])  # stops in the middle of a sentence
    messages, code = exchange(app, CONFIG, half)  # then nothing for 2 s
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "ready" and kinds[-2:] == ["final", "error"], messages
    final = messages[-2]
    assert final["text"] and final["start"] < 0.5 and final["end"] == pytest.approx(1.5, abs=0.05)
    assert messages[-1]["code"] == "idle_timeout" and code == 1008


def test_reconnecting_with_the_session_id_continues_the_segment_numbers(
    app: AppProcess,
) -> None:
    samples = load("en.wav")
    first = stream(app, samples, speed=0, session_id="resume-me")
    assert [f["segment"] for f in finals(first)] == [0, 1]
    again = stream(app, samples, speed=0, session_id="resume-me")
    assert again[0][1] == {"type": "ready", "session_id": "resume-me", "next_segment": 2}
    assert [f["segment"] for f in finals(again)] == [2, 3]
    # nginx routes reconnects by the URL, so the id may come there alone
    messages, code = exchange(app, CONFIG, END, url=f"{ws_url(app)}?session_id=resume-me")
    assert messages[0]["next_segment"] == 4 and code == 1000
    mismatch = json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "session_id": "other"})
    messages, code = exchange(app, mismatch, url=f"{ws_url(app)}?session_id=resume-me")
    assert messages[-1]["code"] == "invalid_config" and code == 1008
    assert no_live_sessions(app)
    with connect(ws_url(app), additional_headers=AUTH) as live:
        live.send(json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "session_id": "x1"}))
        assert json.loads(live.recv(timeout=10))["type"] == "ready"
        twin = json.dumps({"sample_rate": 16000, "format": "pcm_s16le", "session_id": "x1"})
        messages, code = exchange(app, twin)
        assert messages[-1]["code"] == "session_id_in_use" and code == 1008


# --- sharing the model with uploads ---------------------------------------------------------
def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm16_bytes(samples))
    return path


def test_uploads_in_progress_do_not_stall_live_captions(app: AppProcess, tmp_path: Path) -> None:
    """Four 30 s uploads queue at once; stream work jumps the queue, so finals wait for at
    most the one upload already running, never for all of them."""
    long = np.tile(load("en.wav"), 6)
    # different audio each, or the cache would compute identical uploads only once
    clips = [
        write_wav(tmp_path / f"{i}.wav", np.roll(long, 100 * i)).read_bytes() for i in range(4)
    ]
    statuses: list[int] = []

    def upload(clip: bytes) -> None:
        response = httpx.post(
            f"{app.url}/api/transcribe", headers=AUTH, files={"file": ("a.wav", clip)}, timeout=120
        )
        statuses.append(response.status_code)

    uploads = [threading.Thread(target=upload, args=(clip,)) for clip in clips]
    for thread in uploads:
        thread.start()
    assert wait_until(lambda: httpx.get(f"{app.url}/health").json()["queue_depth"] >= 2, 20)
    got = stream(app, load("en.wav"), speed=1.0)
    for thread in uploads:
        thread.join(120)
    assert statuses == [200] * 4
    results = finals(got)
    assert len(results) == 2
    for final in results:
        arrived = next(c for c, m in got if m is final)
        assert arrived - final["end"] < 3.0, got


# --- the command-line client ----------------------------------------------------------------
def test_cli_streams_a_file_and_prints_one_line_per_final(app: AppProcess) -> None:
    command = [sys.executable, "-m", "sensevoice_server.cli", "stream", str(SAMPLES / "en.mp3"),
               "--url", ws_url(app), "--speed", "0", "--api-key", KEY]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(re.match(r"\[\s*\d+\.\d\d-\s*\d+\.\d\d\] en neutral - \S", line) for line in lines)
    refused = subprocess.run([*command[:-1], "wrong"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 1 and "401" in refused.stderr
