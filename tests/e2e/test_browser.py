"""A person's path through the web page, in real headless Chromium driven by Selenium."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from sensevoice_server.testing.servers import AppProcess
from tests.support.samples import EN_SECONDS, SAMPLES

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver"),
]


def chromium(profile: Path, downloads: Path, *extra: str) -> webdriver.Chrome:
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
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
        *extra,
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield driver
    finally:
        driver.quit()


def upload(browser: webdriver.Chrome, app_server: AppProcess, clip: Path) -> WebDriverWait:
    browser.get(app_server.url)
    wait = WebDriverWait(browser, 120)
    field = wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#audio input[type=file]")
        )
    )
    field.send_keys(str(clip))
    # the player appears once the upload has reached the server
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#audio [data-testid^=audio-player]")
    ))  # fmt: skip
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "transcribe"))).click()
    return wait


def downloaded(directory: Path, suffix: str, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in directory.glob(f"*{suffix}") if p.stat().st_size]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"nothing ending in {suffix} was downloaded to {directory}")


def test_upload_transcribe_and_see_transcript_segments_legend_and_downloads(
    browser: webdriver.Chrome, app_server: AppProcess, tmp_path: Path
) -> None:
    wait = upload(browser, app_server, SAMPLES / "en.wav")
    transcript = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#transcript textarea").get_property("value")
    )
    assert len(transcript.split()) >= 3
    # The table draws its rows itself; read it as a person does, by its text.
    table = wait.until(
        lambda d: (text := d.find_element(By.ID, "segments").text).count("neutral") >= 1 and text
    )
    assert "5.246" in table  # the clip's two sentences, merged into one segment
    # duration and timing (or "from cache" when an earlier test sent the same clip)
    timings = wait.until(lambda d: d.find_element(By.ID, "timings").text)
    assert f"Audio {EN_SECONDS:.1f} s" in timings
    assert "processing" in timings or "from cache" in timings
    # the examples say what their settings mean
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "en.wav · Detect automatically · ITN on" in page
    # the legend, collapsed until opened
    legend = browser.find_element(By.ID, "legend")
    assert "laughter" not in legend.text
    legend.find_element(By.TAG_NAME, "button").click()
    wait.until(lambda d: "laughter" in d.find_element(By.ID, "legend").text)
    # the transcript as files
    button = wait.until(expected_conditions.element_to_be_clickable((By.ID, "download-srt")))
    button.click()
    srt = downloaded(tmp_path / "downloads", ".srt").read_text()
    assert srt.startswith("1\n00:00:00,") and " --> " in srt
    for fmt in ("text", "vtt", "verbose_json"):  # formats.py's names
        assert browser.find_element(By.ID, f"download-{fmt}").is_displayed()


def test_silence_says_no_speech_detected(browser: webdriver.Chrome, app_server: AppProcess) -> None:
    wait = upload(browser, app_server, SAMPLES / "silence.wav")
    shown = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#transcript textarea").get_property("value")
    )
    assert shown == "No speech detected"


def test_the_live_tab_captions_a_microphone(app_server: AppProcess, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a sample clip (in a loop) into the Live tab."""
    fake_audio = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={SAMPLES / 'en_44k_stereo.wav'}")  # fmt: skip
    browser = chromium(tmp_path / "profile", tmp_path / "downloads", *fake_audio)
    try:
        browser.get(app_server.url)
        wait = WebDriverWait(browser, 120)
        tab = wait.until(expected_conditions.element_to_be_clickable(
            (By.XPATH, "//button[@role='tab'][contains(., 'Live')]")
        ))  # fmt: skip
        tab.click()
        record = wait.until(expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, "#live-microphone button.record-button")
        ))  # fmt: skip
        record.click()
        caption = wait.until(lambda d: re.search(
            r"\[\d+\.\d–\d+\.\d s\] en neutral  \S",
            d.find_element(By.CSS_SELECTOR, "#live-captions textarea").get_property("value"),
        ))  # fmt: skip
        assert caption
        stop = browser.find_element(
            By.CSS_SELECTOR,
            "#live-microphone button.stop-button, #live-microphone button[aria-label*='top']",
        )
        stop.click()
        wait.until(lambda d: d.find_element(By.ID, "live-download-srt").is_displayed())
    finally:
        browser.quit()
