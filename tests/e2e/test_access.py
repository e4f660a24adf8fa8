"""With API keys set, nothing transcribes anonymously: not the API, not the Gradio API, not
the web UI. Real app, real clients: httpx, gradio_client with a Bearer header, a login form."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import Client, handle_file

from sensevoice_server.testing.servers import AppProcess
from tests.support.keys import BEARER, KEY
from tests.support.samples import EN


def gradio_call(url: str, headers: dict[str, str]) -> httpx.Response:
    body = {"data": [None, "auto", True]}
    return httpx.post(f"{url}/gradio_api/call/transcribe", json=body, headers=headers, timeout=30)


def test_the_gradio_api_needs_the_key(keyed_app: AppProcess) -> None:
    upload = httpx.post(
        f"{keyed_app.url}/gradio_api/upload", files={"files": EN.read_bytes()}, timeout=30
    )
    assert upload.status_code == 401
    assert upload.json()["error"]["code"] == "login_required"
    assert gradio_call(keyed_app.url, {}).status_code == 401
    assert httpx.get(f"{keyed_app.url}/config").status_code == 401
    assert gradio_call(keyed_app.url, BEARER).status_code == 200


def test_gradio_client_works_with_the_key_in_its_headers(keyed_app: AppProcess) -> None:
    client = Client(keyed_app.url, headers=BEARER, verbose=False)
    rich, _ = client.predict(handle_file(str(EN)), "auto", True, api_name="/transcribe")
    assert rich
    with pytest.raises(Exception):  # noqa: B017 (gradio_client raises several kinds)
        Client(keyed_app.url, verbose=False)


def test_a_browser_is_sent_to_the_login_page_and_the_key_logs_it_in(
    keyed_app: AppProcess,
) -> None:
    page = {"Accept": "text/html"}
    with httpx.Client(base_url=keyed_app.url, timeout=30) as browser:
        first = browser.get("/", headers=page)
        assert first.status_code == 303 and first.headers["location"] == "/login?next=/"
        assert "Password or API key" in browser.get("/login").text
        wrong = browser.post("/login", data={"user": "me", "password": "nope", "next": "/"})
        assert wrong.status_code == 401 and "Wrong user or password" in wrong.text
        login = browser.post("/login", data={"user": "me", "password": KEY, "next": "/"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert browser.get("/", headers=page).status_code == 200  # the cookie is enough now
        assert (
            gradio_call(
                keyed_app.url, {"Cookie": f"sensevoice_login={browser.cookies['sensevoice_login']}"}
            ).status_code
            == 200
        )
        browser.get("/logout")
        assert browser.get("/", headers=page).status_code == 303


def test_an_open_redirect_is_not_possible(keyed_app: AppProcess) -> None:
    login = httpx.post(
        f"{keyed_app.url}/login",
        data={"user": "", "password": KEY, "next": "https://evil.example/"},
    )
    assert login.status_code == 303 and login.headers["location"] == "/"


def test_health_ready_metrics_and_docs_stay_open(keyed_app: AppProcess) -> None:
    for route in ("/health", "/ready", "/metrics", "/cache/stats", "/docs", "/openapi.json"):
        assert httpx.get(f"{keyed_app.url}{route}").status_code == 200, route


def test_start_up_says_which_ways_in_are_open(keyed_app: AppProcess) -> None:
    log = keyed_app.log()
    assert "access: /api, /v1, /ws need an API key" in log
    assert "the web UI and Gradio API need a Bearer key or a login with an API key" in log
    assert KEY not in log
