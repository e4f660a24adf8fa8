"""Gradio's upload folder stays bounded: audio only, nothing left behind, removed after use.

Gradio's own upload route kept any bytes (10 x 20 MB of random data: 191 MB in 1.1 s, for
good), left the whole file behind when it refused a name (`..`) and a partial one when the
client went away, and every file through the Several files tab left a stray temporary file.
Real requests against the real app, with its upload folder (GRADIO_TEMP_DIR) watched from
outside, a 4 MB cap on it and uploads kept 5 s after their last use.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sensevoice_server.testing.servers import AppProcess, run_app, wait_until
from tests.support.media import movie, wav
from tests.support.samples import SAMPLES

TTL_S = 5


@pytest.fixture(scope="module")
def app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[AppProcess, Path]]:  # fmt: skip
    folder = tmp_path_factory.mktemp("uploads") / "gradio"
    env = {**model_env, "GRADIO_TEMP_DIR": str(folder), "SENSEVOICE_UI_UPLOAD_MAX_MB": "4",
           "SENSEVOICE_UI_UPLOAD_TTL_S": str(TTL_S)}  # fmt: skip
    with run_app(env, tmp_path_factory.mktemp("uploads-logs")) as process:
        yield process, folder


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()}


def upload(url: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{url}/gradio_api/upload", files={"files": (name, data)}, timeout=60)


def test_random_bytes_are_refused_as_they_arrive_and_leave_nothing(
    app: tuple[AppProcess, Path],
) -> None:
    process, folder = app
    before = files_in(folder)
    started = time.monotonic()
    for i in range(3):
        answer = upload(process.url, f"r{i}.wav", os.urandom(1_500_000))  # under the cap
        assert answer.status_code == 415, answer.text
        assert "'r" + f"{i}.wav' is not audio" in answer.json()["error"]["message"]
    assert time.monotonic() - started < 30
    assert files_in(folder) - before == set()


def test_audio_and_video_containers_are_kept(app: tuple[AppProcess, Path], tmp_path: Path
                                             ) -> None:  # fmt: skip
    """What the API transcribes is accepted here too, an MP4 whose index comes last (a
    phone's video) included; a video without a sound track is not audio."""
    process, folder = app
    for name in ("en.wav", "en.m4a", "en.webm", "en.mp3", "en.flac", "en.ogg"):
        answer = upload(process.url, name, (SAMPLES / name).read_bytes())
        assert answer.status_code == 200, (name, answer.text)
        assert Path(answer.json()[0]).is_file()
    talk = upload(process.url, "talk.mp4", movie(tmp_path, video=True, audio=True))
    assert talk.status_code == 200, talk.text
    before = files_in(folder)
    silent = upload(process.url, "silent.mp4", movie(tmp_path, video=True, audio=False))
    assert silent.status_code == 415, silent.text
    assert files_in(folder) - before == set()


def test_a_refused_file_name_leaves_nothing(app: tuple[AppProcess, Path]) -> None:
    process, folder = app
    before = files_in(folder)
    answer = upload(process.url, "..", (SAMPLES / "en.wav").read_bytes())
    assert answer.status_code == 400, answer.text
    assert files_in(folder) - before == set()


def test_an_upload_the_client_abandons_leaves_nothing(app: tuple[AppProcess, Path]) -> None:
    process, folder = app
    before = files_in(folder)
    host, port = process.url.split("//")[1].split(":")
    audio = wav(60)  # 1.9 MB of valid audio, of which only half is sent
    head = (b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port))) as client:
        client.sendall(
            b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
            + f"Content-Length: {len(head) + len(audio) + 14}\r\n\r\n".encode()
            + head + audio[: len(audio) // 2]
        )  # fmt: skip
        time.sleep(0.5)
    assert wait_until(lambda: files_in(folder) - before == set(), 5), files_in(folder) - before


def test_a_folder_over_its_cap_answers_429_before_the_body(app: tuple[AppProcess, Path]
                                                           ) -> None:  # fmt: skip
    """The folder holds the example clips (1.8 MB) and the uploads above; 4.5 MB more would
    pass the 4 MB cap: refused with Retry-After, which the client sees (the body is read
    and dropped, not kept), while a small upload still fits."""
    process, folder = app
    before = files_in(folder)
    answer = upload(process.url, "long.wav", wav(140))
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert "upload folder is full" in answer.json()["error"]["message"]
    assert files_in(folder) - before == set()
    assert upload(process.url, "short.wav", wav(1)).status_code == 200


def join(client: httpx.Client, event: int, data: list[Any], session: str,
         until: str = "process_completed") -> dict[str, Any]:  # fmt: skip
    """An event through Gradio's queue, as the browser sends it; its message `until` (a
    stream event stays open for the next chunk: it answers each with process_streaming)."""
    joined = client.post("/queue/join", json={"data": data, "fn_index": event,
                                               "session_hash": session, "event_data": None,
                                               "trigger_id": None})  # fmt: skip
    assert joined.status_code == 200, joined.text
    with client.stream("GET", "/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") in (until, "process_completed"):
                    return dict(message)
    raise AssertionError(f"no {until}")


def event_of(url: str, trigger: str, elem_id: str | None = None) -> int:
    """The id of the event `trigger` sets off (on the component `elem_id`, if given)."""
    config = httpx.get(f"{url}/config").json()
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id}
    return next(
        int(dependency.get("id", index))
        for index, dependency in enumerate(config["dependencies"])
        if any(t[1] == trigger and (elem_id is None or t[0] in ids)
               for t in dependency.get("targets") or [])
    )  # fmt: skip


def file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(path).name}


def test_the_several_files_tab_removes_its_files_once_read_and_leaves_no_temporary_file(
    app: tuple[AppProcess, Path],
) -> None:
    process, folder = app
    event = event_of(process.url, "click", "batch-transcribe")
    before = files_in(folder)
    with httpx.Client(base_url=f"{process.url}/gradio_api", timeout=120) as client:
        paths = [client.post("/upload", files={"files": (name, (SAMPLES / name).read_bytes())}
                             ).json()[0] for name in ("ja.wav", "ko.wav")]  # fmt: skip
        done = join(client, event, [[file_data(p) for p in paths], "auto", True, "", []], "several")
    assert done["success"], done
    rows = done["output"]["data"][0]["data"]
    assert [row[:2] for row in rows] == [["ja.wav", "done"], ["ko.wav", "done"]]
    assert done["output"]["data"][2] is None  # the list is cleared: its files are gone
    assert not any(Path(p).exists() for p in paths)
    new = files_in(folder) - before
    assert [Path(p).name for p in new] == ["transcripts.zip"], new  # no stray tmpXXXX file


def test_a_live_chunk_is_removed_once_read(app: tuple[AppProcess, Path]) -> None:
    process, _ = app
    event = event_of(process.url, "stream")
    with httpx.Client(base_url=f"{process.url}/gradio_api", timeout=60) as client:
        chunk = client.post("/upload", files={"files": ("audio.wav", wav(0.5))}).json()[0]
        done = join(
            client,
            event,
            [file_data(chunk), "auto", True, None, ""],
            "live",
            until="process_streaming",
        )
    assert done.get("success", True), done
    assert not Path(chunk).exists()


def test_an_upload_no_event_uses_is_removed_after_its_time(app: tuple[AppProcess, Path]
                                                           ) -> None:  # fmt: skip
    process, _ = app
    kept = upload(process.url, "en.wav", (SAMPLES / "en.wav").read_bytes()).json()[0]
    assert Path(kept).is_file()
    assert wait_until(lambda: not Path(kept).exists(), TTL_S + 15)
