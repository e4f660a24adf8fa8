"""The Transcribe tab as a person meets it, in real headless Chromium: a video dropped in
the page is transcribed, and the segments table reads well.

Before, Chromium refused the video ("Invalid file type: talk.mp4. Only audio/aac,
audio/midi, ... allowed"), and the table broke its headers letter by letter ("st/ar/t")
while the text ran off the side of the screen.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from sensevoice_server.testing.servers import AppProcess
from tests.e2e.test_browser import chromium
from tests.e2e.test_ui_video import talking_video

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver"),
    pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg"),
]

# Each header's lines, and the elements of the table that scroll sideways
LAYOUT = """
const table = document.getElementById('segments');
const lines = element => {  // the line boxes of the element's text (not of its buttons)
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const tops = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) if (rect.width) tops.add(Math.round(rect.top));
  }
  return tops.size;
};
const headers = [...table.querySelectorAll('th')].filter(th => th.innerText.trim())
  .map(th => [th.innerText.trim(), lines(th)]);
const scrolling = [...table.querySelectorAll('*')].filter(e =>
  ['auto', 'scroll'].includes(getComputedStyle(e).overflowX) && e.scrollWidth > e.clientWidth + 1
).length;
return [headers, scrolling];
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    # the narrowest window in which Gradio's page is 960 px wide (test_ui_tables.py)
    driver = chromium(tmp_path / "profile", tmp_path / "downloads", "--window-size=1024,1400")
    try:
        yield driver
    finally:
        driver.quit()


def test_a_video_dropped_in_the_page_is_transcribed_into_a_readable_table(
    browser: webdriver.Chrome, app_server: AppProcess, tmp_path: Path
) -> None:
    video = talking_video(tmp_path / "talk.mp4")
    expected = httpx.post(f"{app_server.url}/api/transcribe",
                          files={"file": (video.name, video.read_bytes())}, timeout=120
                          ).json()["text"]  # fmt: skip
    browser.get(app_server.url)
    wait = WebDriverWait(browser, 120)
    field = wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#video input[type=file]")
    ))  # fmt: skip
    field.send_keys(str(video))
    # the video's sound lands in the Audio component, which plays it
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#audio [data-testid^=audio-player]")
    ))  # fmt: skip
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "transcribe"))).click()
    shown = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#transcript textarea").get_property("value")
    )
    assert shown == expected
    wait.until(lambda d: "neutral" in d.find_element(By.ID, "segments").text)
    headers, scrolling = browser.execute_script(LAYOUT)
    assert [name for name, _ in headers][:6] == [
        "start", "end", "language", "emotion", "events", "text"
    ]  # fmt: skip
    assert all(count == 1 for _, count in headers), headers  # no "st/ar/t"
    assert scrolling == 0  # the text wraps inside the table instead of running off-screen
