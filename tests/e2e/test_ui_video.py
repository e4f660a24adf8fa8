"""A video in the web UI: the Transcribe tab takes it and transcribes its sound track, as
`POST /api/transcribe` does.

Before, the tab's only upload area (gr.Audio) refused a video in the browser, with a wall
of audio MIME types that Gradio's front end fixes; the API transcribed the same file. Now a
video input beside it hands the video's sound to the Audio component (ui/video.py). These
tests make the calls the page makes (tests/support/page.py); test_ui_browser.py drops a
video in real Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from sensevoice_server.testing.servers import AppProcess
from tests.support.page import Page, props
from tests.support.samples import SAMPLES

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


def talking_video(path: Path) -> Path:
    """en.wav's speech under a black picture as long as it, as AAC in `path`'s container."""
    with wave.open(str(SAMPLES / "en.wav")) as speech:
        seconds = speech.getnframes() / speech.getframerate()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=black:s=64x64:r=10:d={seconds:.2f}", "-i", str(SAMPLES / "en.wav"),
         "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MP4 (browsers play its sound as it is) and a Matroska file (its track is copied
    into an M4A the browser plays)."""
    folder = tmp_path_factory.mktemp("videos")
    return {kind: talking_video(folder / f"talk.{kind}") for kind in ("mp4", "mkv")}


def api_text(app: AppProcess, video: Path) -> str:
    answer = httpx.post(f"{app.url}/api/transcribe",
                        files={"file": (video.name, video.read_bytes())}, timeout=120)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["text"])


def test_the_page_lets_videos_in(app_server: AppProcess) -> None:
    """The browser checks a file against these types before it uploads it: the common
    video containers, and audio (the API takes both)."""
    accepted = props(app_server.url, "video")["file_types"]
    assert {"video", ".mp4", ".webm", ".mkv", ".mov", "audio"} <= set(accepted)
    assert {"video", ".mkv", "audio"} <= set(props(app_server.url, "batch-files")["file_types"])


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_a_video_in_the_transcribe_tab_is_transcribed_as_the_api_transcribes_it(
    app_server: AppProcess, videos: dict[str, Path], kind: str
) -> None:
    video = videos[kind]
    with Page(app_server.url) as page:
        handed = page.event("upload", "video", [page.upload(video)])
        assert handed["success"], handed
        sound, cleared = handed["output"]["data"]
        assert cleared is None  # the video input empties: the Audio component holds it now
        assert Path(sound["path"]).stem == "talk"  # the downloads are named after it
        done = page.event("click", "transcribe", [sound, "auto", True, "", []])
    assert done["success"], done
    text = done["output"]["data"][0]
    assert text and text == api_text(app_server, video)


def test_the_several_files_tab_transcribes_a_video_too(
    app_server: AppProcess, videos: dict[str, Path]
) -> None:
    with Page(app_server.url) as page:
        files = [page.upload(videos["mkv"])]
        done = page.event("click", "batch-transcribe", [files, "auto", True, "", []])
    assert done["success"], done
    (row,) = done["output"]["data"][0]["data"]
    assert row[0] == "talk.mkv" and row[1] in ("done", "from cache")
    assert row[4] == api_text(app_server, videos["mkv"])


def test_gradio_client_transcribes_a_video(app_server: AppProcess, videos: dict[str, Path]
                                           ) -> None:  # fmt: skip
    """The `/transcribe` endpoint a script calls takes a video as the API does."""
    client = Client(app_server.url, verbose=False)
    text, _ = client.predict(handle_file(str(videos["mp4"])), "auto", True,
                             api_name="/transcribe")  # fmt: skip
    assert text == api_text(app_server, videos["mp4"])


def test_a_file_that_is_not_media_is_still_refused_at_upload(
    app_server: AppProcess, tmp_path: Path
) -> None:
    """The upload route sniffs what comes in (api/gradio_uploads.py): a name ending in .mp4
    lets a file through the browser's check, not through the server's."""
    fake = tmp_path / "notes.mp4"
    fake.write_text("meeting notes: buy milk\n" * 200)
    with Page(app_server.url) as page, pytest.raises(httpx.HTTPStatusError) as refused:
        page.upload(fake)
    assert refused.value.response.status_code == 415
    assert "'notes.mp4' is not audio" in refused.value.response.json()["error"]["message"]
