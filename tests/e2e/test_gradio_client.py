"""The real app on a real port, used through gradio_client as a user's script would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from funasr.utils.postprocess_utils import rich_transcription_postprocess
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from sensevoice_server.audio import AudioLimits, decode
from sensevoice_server.testing.audio_files import write_samples, write_wav
from sensevoice_server.testing.reference import reference_text, without_spaces
from sensevoice_server.testing.servers import AppProcess, wait_until
from sensevoice_server.transcript import TAG
from tests.support.keys import BEARER
from tests.support.samples import SAMPLES, SPEECH_SAMPLES


@pytest.fixture(scope="module")
def client(app_server: AppProcess) -> Client:
    return Client(app_server.url, verbose=False)


def test_health_and_ready(app_server: AppProcess) -> None:
    assert httpx.get(f"{app_server.url}/health").json()["status"] == "ok"
    ready = httpx.get(f"{app_server.url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize("name", [*SPEECH_SAMPLES, "en.webm", "en_44k_stereo.wav"])
def test_transcribe_endpoint_matches_the_reference(
    client: Client, reference_model, name: str
) -> None:
    rich, table = client.predict(
        handle_file(str(SAMPLES / name)), "auto", True, api_name="/transcribe"
    )
    samples = decode((SAMPLES / name).read_bytes(), AudioLimits(10**8, 3600))
    expected = reference_text(reference_model, samples, "auto", True)
    assert rich and without_spaces(rich) == without_spaces(rich_transcription_postprocess(expected))
    rows = table["data"]
    assert table["headers"] == ["start", "end", "language", "emotion", "events", "text"]
    assert " ".join(row[5] for row in rows) == " ".join(TAG.sub(" ", expected).split())
    starts = [row[0] for row in rows]
    assert starts == sorted(starts) and all(row[0] < row[1] for row in rows)


def test_language_and_itn_reach_the_model(client: Client) -> None:
    _, table = client.predict(
        handle_file(str(SAMPLES / "en.wav")), "zh", False, api_name="/transcribe"
    )
    assert {row[2] for row in table["data"]} == {"zh"}


def test_silence_says_no_speech_detected(client: Client) -> None:
    rich, table = client.predict(
        handle_file(str(SAMPLES / "silence.wav")), "auto", True, api_name="/transcribe"
    )
    assert rich == "No speech detected" and table["data"] in ([], [["", "", "", "", "", ""]])


def bad_uploads(tmp: Path) -> Iterator[tuple[str, Path, str]]:
    (tmp / "empty.wav").write_bytes(b"")
    yield "empty", tmp / "empty.wav", "empty"
    # not audio: refused by the upload itself (api/gradio_uploads.py), which gradio_client
    # raises as httpx's HTTPStatusError
    (tmp / "random.wav").write_bytes(np.random.default_rng(2).bytes(30_000))
    yield "random bytes", tmp / "random.wav", "415 Unsupported Media Type"
    (tmp / "truncated.mp3").write_bytes((SAMPLES / "en.mp3").read_bytes()[:9000])
    yield "truncated mp3", tmp / "truncated.mp3", "truncated"
    (tmp / "notes.wav").write_text("meeting notes: buy milk\n" * 40)
    yield "text named .wav", tmp / "notes.wav", "415 Unsupported Media Type"
    yield (
        "over the duration limit",
        write_wav(tmp / "long.wav", 30),
        "longer than the limit of 20 seconds",
    )


def test_bad_uploads_get_clear_errors_and_the_app_keeps_serving(
    client: Client, app_server: AppProcess, tmp_path: Path
) -> None:
    for label, path, message in bad_uploads(tmp_path):
        with pytest.raises((AppError, httpx.HTTPStatusError), match=message):
            client.predict(handle_file(str(path)), "auto", True, api_name="/transcribe")
        rich, _ = client.predict(
            handle_file(str(SAMPLES / "en.wav")), "auto", True, api_name="/transcribe"
        )
        assert rich, f"no transcript after the {label} upload"


def test_upload_over_the_byte_limit_is_refused(client: Client, tmp_path: Path) -> None:
    big = write_wav(tmp_path / "big.wav", 70)  # 2.2 MB against a 2 MB limit
    with pytest.raises(Exception, match=r"(?i)too large|limit|exceed"):
        client.predict(handle_file(str(big)), "auto", True, api_name="/transcribe")
    assert client.predict(
        handle_file(str(SAMPLES / "en.wav")), "auto", True, api_name="/transcribe"
    )[0]


def test_a_full_queue_gives_the_busy_error(keyed_app: AppProcess, tmp_path: Path) -> None:
    """The keyed app holds one job at a time (with the key in the client's headers)."""
    app = keyed_app
    samples = decode((SAMPLES / "en.wav").read_bytes(), AudioLimits(10**8, 3600))
    long_clip = write_samples(tmp_path / "long.wav", np.tile(samples, 36))  # 3 min
    client = Client(app.url, headers=BEARER, verbose=False)
    first = client.submit(handle_file(str(long_clip)), "auto", True, api_name="/transcribe")
    assert wait_until(lambda: httpx.get(f"{app.url}/health").json()["queue_depth"] >= 1, 30)
    with pytest.raises(AppError, match="busy"):
        client.predict(handle_file(str(SAMPLES / "en.wav")), "auto", True, api_name="/transcribe")
    assert first.result(timeout=300)[0]  # the queued job was not lost
    assert client.predict(
        handle_file(str(SAMPLES / "en.wav")), "auto", True, api_name="/transcribe"
    )[0]
