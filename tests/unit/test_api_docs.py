"""`/docs` and `/redoc` work without internet access: every script, style and icon they load
comes from this server (FastAPI's defaults load them from CDNs, and the page stays blank
offline). tests/e2e/test_api_docs_offline.py renders them in a browser with no network."""

from __future__ import annotations

import re

import pytest

from tests.support.inprocess import InProcessApp

pytestmark = pytest.mark.anyio
# every URL a page loads: src=, href= and ReDoc's spec-url= attributes, Swagger UI's `url:`
LOADED = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)|\burl\s*:\s*["']([^"']+)""")
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
         ".json": "application/json"}  # fmt: skip


def loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in LOADED.findall(html)]


@pytest.mark.parametrize(("page", "needs"), [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "openapi.json"}),
    ("/redoc", {"redoc.standalone.js", "openapi.json"}),
])  # fmt: skip
async def test_the_docs_pages_load_everything_from_this_server(
    app: InProcessApp, page: str, needs: set[str]
) -> None:
    answer = await app.client.get(page)
    assert answer.status_code == 200
    urls = loaded_urls(answer.text)
    assert needs <= {url.rsplit("/", 1)[-1] for url in urls}, urls
    assert not re.search(r"https?://", answer.text), "the page names another host"
    for url in urls:
        assert url.startswith("/"), url
        asset = await app.client.get(url)
        assert asset.status_code == 200, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert asset.headers["content-type"].startswith(TYPES[suffix]), url
        assert len(asset.content) > 1000 or suffix == ".json", url


async def test_only_the_named_asset_files_are_served(app: InProcessApp) -> None:
    for path in ("/docs/LICENSE", "/docs/../core.py", "/docs/static/swagger-ui.css"):
        assert (await app.client.get(path)).status_code != 200, path
