"""`/v1/realtime?intent=transcription` driven by the official openai SDK's realtime client, as
the clients people already have would drive it: every server frame is validated against the
SDK's own `RealtimeServerEvent`, each item's deltas add up to its completed transcript, and a
bad event gets an error event while the session goes on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from sensevoice_server.cli.stream import stream_samples
from sensevoice_server.live.protocol import pcm16_bytes
from sensevoice_server.testing.servers import AppProcess, run_app
from tests.support.keys import KEY
from tests.support.samples import load, resampled

SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
CHUNK_S = 0.1
Event = dict[str, Any]
pytestmark = pytest.mark.anyio


@asynccontextmanager
async def session(app: AppProcess) -> AsyncIterator[Any]:
    client = AsyncOpenAI(base_url=f"{app.url}/v1", api_key="not-needed", max_retries=0)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        yield connection


async def receive(connection: Any, until: str, count: int = 1, timeout: float = 60) -> list[Event]:
    """Server events up to the `count`-th of type `until`, each validated by the SDK."""
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while sum(e["type"] == until for e in got) < count:
            raw = await connection.recv_bytes()
            SERVER_EVENT.validate_json(raw)  # raises if the frame is not OpenAI's shape
            got.append(json.loads(raw))
    return got


def update(audio_format: Event, turn_detection: Event | None) -> Event:
    return {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": audio_format, "transcription": {"model": "sensevoice-small"},
        "turn_detection": turn_detection}}}}  # fmt: skip


async def append(connection: Any, data: bytes, rate: int, width: int, speed: float) -> None:
    step = int(rate * CHUNK_S) * width
    for start in range(0, len(data), step):
        chunk = base64.b64encode(data[start : start + step]).decode()
        await connection.send({"type": "input_audio_buffer.append", "audio": chunk})
        await asyncio.sleep(CHUNK_S / speed)


def items(got: list[Event]) -> dict[str, Event]:
    """Per item: its deltas joined and its completed event."""
    out: dict[str, dict[str, Any]] = {}
    for e in got:
        if e["type"].startswith("conversation.item.input_audio_transcription."):
            item = out.setdefault(e["item_id"], {"deltas": ""})
            if e["type"].endswith(".delta"):
                item["deltas"] += e["delta"]
            elif e["type"].endswith(".completed"):
                item["completed"] = e
    return out


@pytest.mark.parametrize("speed", [1.0, 4.0], ids=["real-time", "4x"])
async def test_server_vad_gives_one_item_per_utterance_whose_deltas_make_its_transcript(
    app_server: AppProcess, speed: float
) -> None:
    audio = np.concatenate([load("en.wav"), np.zeros(16000, np.float32)])  # 1 s to end on
    async with session(app_server) as connection:
        created = await receive(connection, "session.created")
        assert created[0]["session"]["type"] == "transcription"
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, {"type": "server_vad"}))
        await receive(connection, "session.updated")
        await append(connection, pcm16_bytes(resampled(audio, 24000)), 24000, 2, speed)
        got = await receive(connection, "conversation.item.input_audio_transcription.completed", 2)
    kinds = [e["type"] for e in got]
    assert kinds.count("input_audio_buffer.speech_started") == 2
    assert kinds.count("input_audio_buffer.committed") == 2
    done = items(got)
    assert len(done) == 2
    for item in done.values():
        completed = item["completed"]
        assert item["deltas"] == completed["transcript"] and completed["transcript"]
        assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 0.5
        assert {"language", "emotion", "events"} <= set(completed)  # SenseVoice's extras
    starts = [e["audio_start_ms"] for e in got if e["type"].endswith("speech_started")]
    assert starts[0] < 500 and 2500 < starts[1] < 3600  # en.wav's two sentences


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
async def test_manual_commits_of_8khz_g711_are_transcribed_as_uploads(
    app_server: AppProcess, law: str
) -> None:
    with warnings.catch_warnings():  # audioop (deprecated, gone in 3.13) encodes the test audio
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

        linear = pcm16_bytes(resampled(load("en.wav"), 8000))
        encoded = audioop.lin2ulaw(linear, 2) if law == "pcmu" else audioop.lin2alaw(linear, 2)
    async with session(app_server) as connection:
        await connection.send(update({"type": f"audio/{law}"}, None))
        updated = await receive(connection, "session.updated")
        assert updated[-1]["session"]["audio"]["input"]["turn_detection"] is None
        await append(connection, encoded, 8000, 1, speed=50)
        await connection.send({"type": "input_audio_buffer.commit"})
        got = await receive(connection, "conversation.item.done")
    [item] = items(got).values()
    assert item["deltas"] == item["completed"]["transcript"] != ""
    assert [e["type"] for e in got if "item" in e["type"] or "buffer" in e["type"]][:2] == [
        "input_audio_buffer.committed", "conversation.item.added"]  # fmt: skip


async def test_bad_events_get_error_events_and_the_session_goes_on(
    app_server: AppProcess,
) -> None:
    async with session(app_server) as connection:
        await receive(connection, "session.created")
        bad = [
            {"type": "input_audio_buffer.append", "audio": "AAAA"},  # before session.update
            {"type": "response.create"},  # not a transcription event
            {"type": "no.such.event"},
        ]
        for event in bad:
            await connection.send(event)
        errors = [e for e in await receive(connection, "error", len(bad))
                  if e["type"] == "error"]  # fmt: skip
        assert [e["error"]["code"] for e in errors] == [
            "session_not_configured", "invalid_event_type", "invalid_event_type"]  # fmt: skip
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, None))
        await receive(connection, "session.updated")
        await connection.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        await connection.send({"type": "input_audio_buffer.commit"})  # nothing buffered
        errors = [e for e in await receive(connection, "error", 2) if e["type"] == "error"]
        assert [e["error"]["code"] for e in errors] == [
            "invalid_base64", "input_audio_buffer_commit_empty"]  # fmt: skip
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, None))
        await receive(connection, "session.updated")  # still serving


async def test_a_model_that_is_not_served_is_an_error_naming_the_served_ones(
    app_server: AppProcess,
) -> None:
    event = update({"type": "audio/pcm", "rate": 24000}, None)
    event["session"]["audio"]["input"]["transcription"]["model"] = "gpt-4o-transcribe"
    async with session(app_server) as connection:
        await connection.send(event)
        got = await receive(connection, "error")
    assert got[-1]["error"]["code"] == "model_not_found"
    assert "sensevoice-small" in got[-1]["error"]["message"]


async def test_the_retired_beta_shape_is_taken_and_answered_in_the_current_one(
    app_server: AppProcess,
) -> None:
    beta = {"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16", "turn_detection": None,
        "input_audio_transcription": {"model": "sensevoice-small", "language": "en"}}}  # fmt: skip
    async with session(app_server) as connection:
        await connection.send(beta)
        got = await receive(connection, "session.updated")
        heard = got[-1]["session"]["audio"]["input"]
        assert heard["format"] == {"type": "audio/pcm", "rate": 24000}
        assert heard["turn_detection"] is None and heard["transcription"]["language"] == "en"
        await append(connection, pcm16_bytes(resampled(load("en.wav"), 24000)), 24000, 2, 50)
        await connection.send({"type": "input_audio_buffer.commit"})
        got = await receive(connection, "conversation.item.input_audio_transcription.completed")
    assert got[-1]["transcript"] and got[-1]["language"] == "en"


async def test_keys_are_required_when_set_by_header_or_by_the_browser_subprotocol(
    keyed_app: AppProcess,
) -> None:
    import websockets

    client = AsyncOpenAI(base_url=f"{keyed_app.url}/v1", api_key=KEY, max_retries=0)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        assert (await receive(connection, "session.created"))[0]["type"] == "session.created"
    wrong = AsyncOpenAI(base_url=f"{keyed_app.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with wrong.realtime.connect(extra_query={"intent": "transcription"}):
            pass
    assert refused.value.response.status_code == 401
    url = keyed_app.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    offered = ["realtime", f"openai-insecure-api-key.{KEY}"]
    async with websockets.connect(url, subprotocols=offered) as browser:  # type: ignore[arg-type]
        assert browser.subprotocol == "realtime"
        SERVER_EVENT.validate_json(await browser.recv())


async def test_without_intent_transcription_the_session_is_refused_with_an_error_event(
    app_server: AppProcess,
) -> None:
    import websockets

    async with websockets.connect(app_server.url.replace("http", "ws") + "/v1/realtime") as ws:
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["error"]["code"] == "invalid_intent"
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008


def test_the_live_limits_and_the_sigterm_drain_are_the_live_cores(
    model_env: dict[str, str], tmp_path: Path
) -> None:
    """One live place: a second session that sends audio is told so and closed (1013). Then
    SIGTERM while the first is mid-sentence: it gets an item for everything it sent, then
    the reason and 1001, as /ws/transcribe streams do."""
    env = {**model_env, "SENSEVOICE_LIVE_MAX_SESSIONS": "1", "SENSEVOICE_LIVE_IDLE_TIMEOUT_S": "30"}
    url = "/v1/realtime?intent=transcription"
    sent = resampled(load("en.wav")[: 4 * 16000], 24000)  # ends inside the second sentence
    pcm = pcm16_bytes(sent)
    configure = json.dumps(update({"type": "audio/pcm", "rate": 24000}, {"type": "server_vad"}))
    with run_app(env, tmp_path) as app:
        base = app.url.replace("http", "ws")
        first = sync_connect(base + url, open_timeout=10)
        first.send(configure)
        for offset in range(0, len(pcm), 4800):
            chunk = base64.b64encode(pcm[offset : offset + 4800]).decode()
            first.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        time.sleep(1.0)  # the server has opened the stream and taken the audio
        with sync_connect(base + url, open_timeout=10) as second:
            second.send(configure)
            second.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            refused = drain(second)
        assert refused[-1]["type"] == "error" and second.close_code == 1013
        app.process.send_signal(signal.SIGTERM)
        got = drain(first)
        assert app.process.wait(30) == 0
    assert got[-1]["type"] == "error" and got[-1]["error"]["code"] == "shutting_down"
    assert first.close_code == 1001
    completed = [e for e in got if e["type"].endswith("transcription.completed")]
    assert len(completed) == 2  # the first sentence, and the one cut off by the drain
    stopped = [e["audio_end_ms"] for e in got if e["type"].endswith("speech_stopped")]
    assert stopped[-1] == pytest.approx(4000, abs=60)


def drain(ws: Any) -> list[Event]:
    """Every event until the server closes, each validated by the SDK."""
    got = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            raw = ws.recv(timeout=30)
            SERVER_EVENT.validate_json(raw)
            got.append(json.loads(raw))
    return got


async def test_a_client_that_leaves_mid_utterance_costs_nothing_and_logs_no_error(
    app_server: AppProcess,
) -> None:
    errors_before = app_server.log().count(" ERROR ")
    async with session(app_server) as connection:
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, {"type": "server_vad"}))
        await receive(connection, "session.updated")
        audio = pcm16_bytes(resampled(load("en.wav")[:32000], 24000))  # inside a sentence
        await append(connection, audio, 24000, 2, speed=50)
    await asyncio.sleep(1.0)  # the server notices the close
    async with session(app_server) as connection:  # and goes on serving
        assert (await receive(connection, "session.created"))[-1]["type"] == "session.created"
    assert app_server.log().count(" ERROR ") == errors_before, app_server.log()[-3000:]


async def test_a_manual_buffer_is_bounded_by_the_upload_duration_limit(
    app_server: AppProcess,
) -> None:
    """The app's uploads are limited to 20 s: so is what a client may buffer before it
    commits; past it an append is refused with an error event, and the buffer is kept."""
    second = base64.b64encode(bytes(48000)).decode()  # 1 s of 24 kHz silence
    async with session(app_server) as connection:
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, None))
        await receive(connection, "session.updated")
        for _ in range(21):
            await connection.send({"type": "input_audio_buffer.append", "audio": second})
        await connection.send({"type": "input_audio_buffer.clear"})
        got = await receive(connection, "input_audio_buffer.cleared")
    errors = [e["error"]["code"] for e in got if e["type"] == "error"]
    assert errors == ["input_audio_buffer_too_long"]


async def test_server_vad_settings_cut_the_stream_and_default_to_the_servers(
    app_server: AppProcess,
) -> None:
    """The session shows how the server cuts streams; a silence_duration_ms longer than the
    pause between en.wav's two sentences makes them one item (two by default, above)."""
    audio = np.concatenate([load("en.wav"), np.zeros(3 * 16000, np.float32)])
    async with session(app_server) as connection:
        created = await receive(connection, "session.created")
        shown = created[0]["session"]["audio"]["input"]["turn_detection"]
        assert shown["silence_duration_ms"] == 500 and shown["threshold"] == 0.5
        longer = {"type": "server_vad", "silence_duration_ms": 2000}
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, longer))
        got = await receive(connection, "session.updated")
        assert got[-1]["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 2000
        await append(connection, pcm16_bytes(resampled(audio, 24000)), 24000, 2, 4.0)
        got = await receive(connection, "conversation.item.input_audio_transcription.completed")
        shorter = {"type": "server_vad", "silence_duration_ms": 300}
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, shorter))
        got += await receive(connection, "error")
    assert [e["type"] for e in got].count("input_audio_buffer.committed") == 1
    completed = items(got).popitem()[1]["completed"]
    assert completed["usage"]["seconds"] > 4.5, completed  # both sentences (5.4 s) in one
    assert got[-1]["error"]["code"] == "invalid_value"  # no change under a running stream


async def test_a_commit_under_server_vad_closes_the_utterance_spoken_so_far(
    app_server: AppProcess,
) -> None:
    """A client that knows the turn is over (push-to-talk released) commits without waiting
    for the silence: the words so far become an item, and listening goes on."""
    audio = load("en.wav")
    cut = int(1.8 * 16000)
    first, rest = audio[:cut], np.concatenate([audio[cut:], np.zeros(16000, np.float32)])
    async with session(app_server) as connection:
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, {"type": "server_vad"}))
        await receive(connection, "session.updated")
        await append(connection, pcm16_bytes(resampled(first, 24000)), 24000, 2, 4.0)
        await connection.send({"type": "input_audio_buffer.commit"})
        early = await receive(connection, "conversation.item.input_audio_transcription.completed")
        await connection.send({"type": "input_audio_buffer.commit"})  # nothing new yet
        early += await receive(connection, "error")
        await append(connection, pcm16_bytes(resampled(rest, 24000)), 24000, 2, 4.0)
        late = await receive(connection, "conversation.item.input_audio_transcription.completed")
    first_item = items(early).popitem()[1]["completed"]
    assert first_item["transcript"] and first_item["usage"]["seconds"] <= 1.9, first_item
    assert early[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    assert [e["type"] for e in late].count("input_audio_buffer.committed") >= 1


async def test_idle_timeout_commits_the_quiet_after_the_last_item_as_an_empty_item(
    app_server: AppProcess,
) -> None:
    """server_vad's idle_timeout_ms, as OpenAI's: 6 s of silence after a sentence with a 5 s
    timeout gives `timeout_triggered` naming the quiet stretch from the sentence's end, then
    that stretch as an item with an empty transcript; the clock restarts there."""
    sentence = load("en.wav")[: int(2.6 * 16000)]  # en.wav's first sentence
    audio = np.concatenate([sentence, np.zeros(6 * 16000, np.float32)])
    detection = {"type": "server_vad", "idle_timeout_ms": 5000}
    async with session(app_server) as connection:
        await connection.send(update({"type": "audio/pcm", "rate": 24000}, detection))
        updated = await receive(connection, "session.updated")
        await append(connection, pcm16_bytes(resampled(audio, 24000)), 24000, 2, 5.0)
        got = await receive(connection, "conversation.item.input_audio_transcription.completed", 2)
    turn = updated[-1]["session"]["audio"]["input"]["turn_detection"]
    assert turn["idle_timeout_ms"] == 5000
    [timeout] = [e for e in got if e["type"] == "input_audio_buffer.timeout_triggered"]
    spoken, quiet = [e for e in got if e["type"].endswith("transcription.completed")]
    assert spoken["transcript"] and quiet["transcript"] == ""
    assert quiet["item_id"] == timeout["item_id"] != spoken["item_id"]
    stopped = next(e for e in got if e["type"] == "input_audio_buffer.speech_stopped")
    assert timeout["audio_start_ms"] == stopped["audio_end_ms"]
    assert 5000 <= timeout["audio_end_ms"] - timeout["audio_start_ms"] < 5200
    committed = [e for e in got if e["type"] == "input_audio_buffer.committed"]
    assert committed[-1]["item_id"] == quiet["item_id"]
    assert committed[-1]["previous_item_id"] == spoken["item_id"]


async def test_turn_detection_values_out_of_range_are_refused(app_server: AppProcess) -> None:
    async with session(app_server) as connection:
        wrongs: list[Event] = [{"threshold": 2}, {"prefix_padding_ms": 900},
                               {"silence_duration_ms": "x"}, {"idle_timeout_ms": 100}]  # fmt: skip
        for wrong in wrongs:
            await connection.send(update({"type": "audio/pcm", "rate": 24000},
                                         {"type": "server_vad", **wrong}))  # fmt: skip
        errors = [e for e in await receive(connection, "error", 4) if e["type"] == "error"]
    assert [e["error"]["param"].rsplit(".", 1)[-1] for e in errors] == [
        "threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"]  # fmt: skip


@pytest.mark.parametrize("turn_detection", [{"type": "server_vad"}, None], ids=["vad", "manual"])
async def test_included_logprobs_come_with_each_completed_transcript(
    app_server: AppProcess, turn_detection: Event | None
) -> None:
    """include: ["item.input_audio_transcription.logprobs"]: each completed event carries
    its tokens' log-probabilities, as OpenAI's (token, logprob, bytes); the SDK's model of
    the event validates it (receive)."""
    audio = np.concatenate([load("en.wav"), np.zeros(16000, np.float32)])
    event = update({"type": "audio/pcm", "rate": 24000}, turn_detection)
    event["session"]["include"] = ["item.input_audio_transcription.logprobs"]
    async with session(app_server) as connection:
        await connection.send(event)
        shown = await receive(connection, "session.updated")
        assert shown[-1]["session"]["include"] == ["item.input_audio_transcription.logprobs"]
        await append(connection, pcm16_bytes(resampled(audio, 24000)), 24000, 2, 4.0)
        if turn_detection is None:
            await connection.send({"type": "input_audio_buffer.commit"})
        got = await receive(connection, "conversation.item.input_audio_transcription.completed")
    completed = got[-1]
    tokens = completed["logprobs"]
    assert tokens and all(t["logprob"] <= 0 and t["bytes"] == list(t["token"].encode())
                          for t in tokens)  # fmt: skip


async def test_with_speaker_labels_each_item_sends_its_segments_with_their_speakers(
    model_env: dict[str, str], campplus_model: Path, tmp_path: Path
) -> None:
    """Speaker labels on: a committed buffer is diarized as an upload is, and under server
    VAD each utterance is labelled as it closes, against the speakers the session has heard;
    either way each segment comes as OpenAI's `.segment` event with its speaker before its
    item completes, in seconds of the item's audio. `/ws/transcribe`'s finals carry the same
    labels. (The test's CAM++ has random weights, which hear one voice: S1 throughout.)"""
    env = {**model_env, "SENSEVOICE_SPEAKERS": "true",
           "SENSEVOICE_SPEAKER_MODEL": str(campplus_model)}  # fmt: skip
    audio = np.concatenate([load("en.wav"), np.zeros(16000, np.float32)])
    with run_app(env, tmp_path) as app:
        async with session(app) as connection:
            await connection.send(update({"type": "audio/pcm", "rate": 24000}, None))
            await receive(connection, "session.updated")
            await append(connection, pcm16_bytes(resampled(load("en.wav"), 24000)), 24000, 2, 50)
            await connection.send({"type": "input_audio_buffer.commit"})
            committed = await receive(
                connection, "conversation.item.input_audio_transcription.completed"
            )
        async with session(app) as connection:
            await connection.send(
                update({"type": "audio/pcm", "rate": 24000}, {"type": "server_vad"})
            )
            await receive(connection, "session.updated")
            await append(connection, pcm16_bytes(resampled(audio, 24000)), 24000, 2, 4)
            spoken = await receive(
                connection, "conversation.item.input_audio_transcription.completed", 2
            )
        finals = [m for m in await stream_samples(app.url, audio, speed=0) if m["type"] == "final"]
    for got, count in ((committed, 1), (spoken, 2)):
        completed = [e for e in got if e["type"].endswith("transcription.completed")]
        assert len(completed) == count
        for done in completed:
            segments = [e for e in got if e["type"].endswith("transcription.segment")
                        and e["item_id"] == done["item_id"]]  # fmt: skip
            assert segments and {s["speaker"] for s in segments} == {"S1"}
            assert got.index(segments[-1]) < got.index(done)
            assert " ".join(s["text"] for s in segments).split() == done["transcript"].split()
            assert all(0 <= s["start"] < s["end"] <= done["usage"]["seconds"] + 0.01
                       for s in segments)  # fmt: skip
    assert len(finals) == 2 and {f["speaker"] for f in finals} == {0}
