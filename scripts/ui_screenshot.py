"""docs/ui.png: the web UI as a new user first sees it, on the trained test model.

Run: .venv/bin/python -m scripts.ui_screenshot   (needs chromium and chromium-driver)

The app is started the README's no-download way (the trained test model, silero VAD), the
English sample clip is dropped in the page and transcribed, and the page is photographed once
the segment table is filled: the words in the picture are what the model heard.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from sensevoice_server.testing.servers import ROOT, run_app
from sensevoice_server.testing.trained_model import write_trained

CLIP = ROOT / "samples" / "en.wav"
OUT = ROOT / "docs" / "ui.png"


def browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,1100",
                 "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        model = write_trained(Path(folder) / "trained")
        env = {"SENSEVOICE_MODEL": str(model), "SENSEVOICE_VAD_MODEL": "silero-vad",
               "SENSEVOICE_CACHE_URL": "none"}  # fmt: skip
        with run_app(env, Path(folder)) as app:
            driver = browser(Path(folder) / "profile")
            try:
                driver.get(app.url)
                wait = WebDriverWait(driver, 120)
                field = wait.until(expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, "#audio input[type=file]")))  # fmt: skip
                field.send_keys(str(CLIP))
                wait.until(expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, "#audio [data-testid^=audio-player]")))  # fmt: skip
                wait.until(expected_conditions.element_to_be_clickable((By.ID, "transcribe"))
                           ).click()  # fmt: skip
                wait.until(lambda d: "neutral" in d.find_element(By.ID, "segments").text)
                transcript = driver.find_element(By.CSS_SELECTOR, "#transcript textarea")
                print("transcript:", transcript.get_property("value"))
                driver.save_screenshot(str(OUT))
            finally:
                driver.quit()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
