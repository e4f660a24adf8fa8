"""A person's path through the web page, in real headless Chromium driven by Selenium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.samples import SAMPLES
from tests.support.servers import AppProcess

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver"),
]


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_transcribe_and_see_transcript_and_segments(
    browser: webdriver.Chrome, app_server: AppProcess
) -> None:
    browser.get(app_server.url)
    wait = WebDriverWait(browser, 120)
    upload = wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#audio input[type=file]")
        )
    )
    upload.send_keys(str(SAMPLES / "en.wav"))
    # the player appears once the upload has reached the server
    wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#audio [data-testid^=audio-player]")
        )
    )
    button = wait.until(expected_conditions.element_to_be_clickable((By.ID, "transcribe")))
    button.click()

    transcript = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#transcript textarea").get_property("value")
    )
    assert len(transcript.split()) >= 3
    # The table draws its rows itself; read it as a person does, by its text.
    table = wait.until(
        lambda d: (text := d.find_element(By.ID, "segments").text).count("neutral") >= 1 and text
    )
    assert "4.894" in table  # the clip's two sentences, merged into one segment
    # duration and timing (or "from cache" when an earlier test sent the same clip)
    timings = wait.until(lambda d: d.find_element(By.ID, "timings").text)
    assert "Audio 5.1 s" in timings and ("processing" in timings or "from cache" in timings)
