"""A user's mistake in the web UI is answered as the API answers it: the API's own message
in the page, one line in the server log, no traceback.

Before, the page got the message but the log got Gradio's traceback of it (20 to 60 lines,
as if the server had failed), while the same mistake through `POST /api/transcribe` was one
access-log line. The app_server's log is read around each mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from sensevoice_server.testing.audio_files import write_wav
from sensevoice_server.testing.servers import AppProcess
from tests.support.page import Page
from tests.support.samples import SAMPLES


def empty(tmp: Path) -> Path:
    (tmp / "empty.wav").write_bytes(b"")
    return tmp / "empty.wav"


def too_long(tmp: Path) -> Path:
    return write_wav(tmp / "long.wav", 30)  # the app_server takes 20 s at most


def corrupt(tmp: Path) -> Path:
    (tmp / "cut.mp3").write_bytes((SAMPLES / "en.mp3").read_bytes()[:9000])
    return tmp / "cut.mp3"


def refused(app: AppProcess, audio: Path | None) -> tuple[str, str]:
    """(the message gradio_client got for `audio`, what the app logged meanwhile); Gradio
    logs before it answers, so the log is complete when the answer comes."""
    client = Client(app.url, verbose=False)
    before = len(app.log())
    with pytest.raises(AppError) as shown:
        client.predict(audio and handle_file(str(audio)), "auto", True, api_name="/transcribe")
    return str(shown.value), app.log()[before:]


def assert_one_clean_line(log: str, code: str) -> None:
    assert "Traceback" not in log, log
    refusals = [line for line in log.splitlines() if "sensevoice_server.ui" in line]
    assert len(refusals) == 1 and code in refusals[0], log


@pytest.mark.parametrize(("make", "code"), [(empty, "empty_audio"), (too_long, "audio_too_long"),
                                             (corrupt, "unsupported_audio")])  # fmt: skip
def test_a_bad_file_gets_the_apis_message_and_one_log_line(
    app_server: AppProcess, tmp_path: Path, make: Callable[[Path], Path], code: str
) -> None:
    path = make(tmp_path)
    api = httpx.post(f"{app_server.url}/api/transcribe",
                     files={"file": (path.name, path.read_bytes())}, timeout=60)  # fmt: skip
    assert api.json()["error"]["code"] == code
    message, log = refused(app_server, path)
    assert message == api.json()["error"]["message"]
    assert_one_clean_line(log, code)


def test_no_audio_says_what_to_do_and_logs_one_line(app_server: AppProcess) -> None:
    message, log = refused(app_server, None)
    assert message.startswith("Upload or record some audio")
    assert_one_clean_line(log, "invalid_request")


def test_the_several_files_tab_without_files_says_so(app_server: AppProcess) -> None:
    with Page(app_server.url) as page:
        before = len(app_server.log())
        done = page.event("click", "batch-transcribe", [None, "auto", True, "", []])
        log = app_server.log()[before:]
    assert not done["success"]
    assert done["output"]["error"] == "Choose some audio or video files first."
    assert_one_clean_line(log, "invalid_request")
