"""The Gradio API opens only files a client uploaded: every other path is refused unread.

Real HTTP requests against the real app, one per kind of path an attacker (or a careless
script) might name, through both ways Gradio takes input data: the REST-style
`/gradio_api/call/<name>` and the queue's `/gradio_api/queue/join`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from sensevoice_server.testing.servers import AppProcess
from tests.support.samples import SAMPLES

REFUSED = "Only audio uploaded to this server can be transcribed"


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def upload(url: str, path: Path) -> str:
    """Upload through Gradio's own route; the server's path of the uploaded copy."""
    with path.open("rb") as handle:
        answer = httpx.post(f"{url}/gradio_api/upload", files={"files": handle}, timeout=30)
    answer.raise_for_status()
    return answer.json()[0]


def call(url: str, path: str) -> httpx.Response:
    body = {"data": [file_data(path), "auto", True, "", []]}
    return httpx.post(f"{url}/gradio_api/call/transcribe", json=body, timeout=30)


def join_queue(url: str, path: str) -> httpx.Response:
    body = {
        "data": [file_data(path), "auto", True, "", []],
        "fn_index": 0,
        "session_hash": "abc123",
    }
    return httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=30)


def result_of(url: str, answer: httpx.Response) -> str:
    event_id = answer.json()["event_id"]
    stream = httpx.get(f"{url}/gradio_api/call/transcribe/{event_id}", timeout=60)
    return stream.text


def hostile_paths(tmp_path: Path, uploaded: str) -> dict[str, str]:
    secret = tmp_path / "secret.wav"
    secret.write_bytes((SAMPLES / "en.wav").read_bytes())
    link = tmp_path / "link.wav"
    link.symlink_to(secret)
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    upload_dir = Path(uploaded).parent
    inside_link = upload_dir / "inside-link.wav"  # a symlink placed in the upload folder
    inside_link.unlink(missing_ok=True)
    inside_link.symlink_to(secret)
    return {
        "absolute": str(secret),
        "relative": os.path.relpath(secret),
        "dot-dot out of the upload folder": f"{upload_dir}/../../{secret.relative_to('/')}",
        "symlink": str(link),
        "symlink inside the upload folder": str(inside_link),
        "device": "/dev/zero",
        "fifo": str(fifo),
        "directory": str(upload_dir),
        "proc": "/proc/self/environ",
        "missing": str(tmp_path / "no-such-file.wav"),
        "url": "https://example.com/recording.wav",
        "file url": f"file://{secret}",
    }


def test_server_paths_are_refused_unread_with_one_message(
    app_server: AppProcess, tmp_path: Path
) -> None:
    uploaded = upload(app_server.url, SAMPLES / "en.wav")
    for kind, path in hostile_paths(tmp_path, uploaded).items():
        for send in (call, join_queue):
            started = time.monotonic()
            answer = send(app_server.url, path)
            assert answer.status_code == 400, (kind, send.__name__, answer.text)
            assert answer.json() == {"error": answer.json()["error"]}
            assert answer.json()["error"].startswith(REFUSED), (kind, answer.text)
            assert path not in answer.text  # the same words whether it exists or not
            health_started = time.monotonic()
            assert httpx.get(f"{app_server.url}/health", timeout=5).status_code == 200
            assert time.monotonic() - health_started < 0.5, kind
            assert time.monotonic() - started < 5, kind


def test_a_file_uploaded_first_is_transcribed(app_server: AppProcess) -> None:
    uploaded = upload(app_server.url, SAMPLES / "en.wav")
    answer = call(app_server.url, uploaded)
    assert answer.status_code == 200, answer.text
    events = result_of(app_server.url, answer)
    assert "event: complete" in events, events


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"data": "x"}'])
def test_malformed_event_bodies_do_not_break_the_server(
    app_server: AppProcess, body: bytes
) -> None:
    answer = httpx.post(
        f"{app_server.url}/gradio_api/call/transcribe",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= answer.status_code < 500
    assert httpx.get(f"{app_server.url}/health").status_code == 200
