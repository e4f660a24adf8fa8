"""The interactive API docs render in a browser that can reach nothing but this server, as
on a machine without internet access (FastAPI's defaults fetch Swagger UI and ReDoc from
CDNs, and `/docs` was a blank page offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from sensevoice_server.testing.servers import AppProcess
from tests.e2e.test_browser import chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver"),
]
# Every host name fails to resolve except the server's own address: no CDN, no fonts.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.mark.parametrize(("page", "rendered"), [
    ("/docs", ".swagger-ui .opblock-summary-path"),  # one line per operation
    ("/redoc", ".api-content h2"),  # one heading per operation
])  # fmt: skip
def test_the_api_docs_render_with_no_network(
    app_server: AppProcess, tmp_path: Path, page: str, rendered: str
) -> None:
    browser = chromium(tmp_path / "profile", tmp_path / "downloads", OFFLINE)
    try:
        browser.get(app_server.url + page)
        found = WebDriverWait(browser, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, rendered) or None
        )
        page_text = browser.find_element(By.TAG_NAME, "body").text
        assert len(found) >= 5, page_text[:500]
        assert "/api/transcribe" in page_text and "/v1/audio/transcriptions" in page_text
    finally:
        browser.quit()
