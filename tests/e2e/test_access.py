"""With API keys set, nothing transcribes anonymously: not the API, not the Gradio API, not
the web UI. Guessing a password or a key gets slow after a few tries, a logout ends the login,
and no secret reaches the log. Real app, real clients: httpx, gradio_client with a Bearer
header, a login form, websockets; other client addresses are other loopback addresses
(127.0.0.2 and up), which the app sees as they are."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from gradio_client import Client, handle_file
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from sensevoice_server.testing.servers import AppProcess, RedisServer, run_app
from tests.support.keys import BEARER, KEY
from tests.support.samples import EN

PASSWORD = "wonder-land-7"  # the guarded app's UI password (alice:PASSWORD)
JSON_KEYS = ("json-key-one", "json-key-two")
REDIS_SECRET = "redis-secret-81"


@pytest.fixture(scope="module")
def guarded_app(
    model_env: dict[str, str], redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcess]:
    """An app with a UI password, API keys in the README's JSON-list form, and a Redis URL
    with a password in its query (this Redis has none, so it warns that it does not
    answer: the warning names the URL)."""
    env = {**model_env, "SENSEVOICE_UI_AUTH": f"alice:{PASSWORD}",
           "SENSEVOICE_API_KEYS": f'["{JSON_KEYS[0]}", "{JSON_KEYS[1]}"]',
           "SENSEVOICE_CACHE_URL": f"{redis_server.url}?password={REDIS_SECRET}"}  # fmt: skip
    with run_app(env, tmp_path_factory.mktemp("guarded")) as app:
        yield app


def client_from(app: AppProcess, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 on Linux)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, base_url=app.url, timeout=30)


def new_log(app: AppProcess, since: int) -> str:
    time.sleep(0.3)  # the app writes its lines as it goes; give the last one a moment
    return app.log()[since:]


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
        cookie = browser.cookies["sensevoice_login"]
        assert browser.post("/logout").status_code == 303
        assert browser.get("/", headers=page).status_code == 303
    # a copy of the cookie is worth nothing after the logout
    copied = httpx.get(f"{keyed_app.url}/", headers=page, cookies={"sensevoice_login": cookie})
    assert copied.status_code == 303 and copied.headers["location"] == "/login?next=/"
    assert httpx.get(f"{keyed_app.url}/config", cookies={"sensevoice_login": cookie}
                     ).status_code == 401  # fmt: skip


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


# --- guessing, logouts and secrets ---------------------------------------------------------


def test_password_guessing_soon_waits_and_the_right_user_gets_back_in(
    guarded_app: AppProcess,
) -> None:
    """Five wrong passwords are heard; then 429 with Retry-After, the password unchecked, and
    the wait doubles with each further failure. Another address is still heard, and the
    right password works for the guesser's address once its wait is over."""
    since = len(guarded_app.log())
    right = {"user": "alice", "password": PASSWORD}
    with client_from(guarded_app, "127.0.0.2") as guesser:
        answers = [guesser.post("/login", data={"user": "alice", "password": f"guess-{n}"})
                   for n in range(6)]  # fmt: skip
        assert [a.status_code for a in answers] == [401] * 5 + [429]
        assert answers[4].headers["Retry-After"] == answers[5].headers["Retry-After"] == "1"
        assert guesser.post("/login", data=right).status_code == 429  # a right guess too
        with client_from(guarded_app, "127.0.0.3") as someone_else:
            assert someone_else.post("/login", data=right).status_code == 303
        time.sleep(1.1)
        heard = guesser.post("/login", data={"user": "alice", "password": "guess-6"})
        assert heard.status_code == 401 and heard.headers["Retry-After"] == "2"  # growing
        assert guesser.post("/login", data=right).status_code == 429
        time.sleep(2.1)
        assert guesser.post("/login", data=right).status_code == 303
    log = new_log(guarded_app, since)
    failures = [line for line in log.splitlines() if "failed login from 127.0.0.2" in line]
    assert len(failures) == 6 and all(" WARNING " in line for line in failures)
    assert "guess-" not in log and PASSWORD not in log


def test_wrong_bearer_keys_soon_wait_too(guarded_app: AppProcess) -> None:
    """Both keys of the JSON list work; wrong keys from one address get 429 after five."""
    for key in JSON_KEYS:
        ok = httpx.get(f"{guarded_app.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    with client_from(guarded_app, "127.0.0.4") as guesser:
        answers = [guesser.get("/v1/models", headers={"Authorization": f"Bearer guess-{n}"})
                   for n in range(7)]  # fmt: skip
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 2
    assert answers[-1].json()["error"]["code"] == "too_many_failures"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    mine = httpx.get(f"{guarded_app.url}/v1/models",
                     headers={"Authorization": f"Bearer {JSON_KEYS[0]}"})  # fmt: skip
    assert mine.status_code == 200  # the right client, from its own address


def test_a_refused_websocket_logs_one_warning_and_no_key(guarded_app: AppProcess) -> None:
    """A wrong key, %-encoded as `api%5Fkey` (which the server decodes and accepts), is
    refused with 401 and leaves one WARNING line: no ERROR, no traceback, no key; a right
    key in that form is accepted and masked in the log too."""
    since = len(guarded_app.log())
    host, port = urlsplit(guarded_app.url).hostname, urlsplit(guarded_app.url).port
    ws_url = f"ws://{host}:{port}/ws/transcribe"
    sock = socket.create_connection((host, port), source_address=("127.0.0.5", 0))
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(f"{ws_url}?api%5Fkey=guessed-key-5", sock=sock),
    ):
        pass
    assert refused.value.response.status_code == 401
    with connect(f"{ws_url}?api%5Fkey={JSON_KEYS[1]}"):
        pass
    log = new_log(guarded_app, since)
    assert " ERROR " not in log and "Traceback" not in log, log
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, log
    assert "wrong API key for '/ws/transcribe' from 127.0.0.5" in warnings[0]
    assert "guessed-key-5" not in log and JSON_KEYS[1] not in log
    assert "api%5Fkey=***" in log


def test_a_websocket_guesser_waits_too(guarded_app: AppProcess) -> None:
    host, port = urlsplit(guarded_app.url).hostname, urlsplit(guarded_app.url).port
    statuses = []
    for n in range(6):
        sock = socket.create_connection((host, port), source_address=("127.0.0.6", 0))
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(f"ws://{host}:{port}/ws/transcribe?api_key=guess-{n}", sock=sock),
        ):
            pass
        statuses.append(refused.value.response.status_code)
    assert statuses == [401] * 5 + [429]
    assert refused.value.response.headers["Retry-After"] == "1"


def test_an_unknown_gradio_session_ends_its_stream_without_an_error(
    guarded_app: AppProcess,
) -> None:
    """Gradio refuses an unknown session_hash only after its event stream began; the
    stream now ends cleanly, and the log gets one INFO line, not two tracebacks."""
    since = len(guarded_app.log())
    answer = httpx.get(f"{guarded_app.url}/gradio_api/queue/data?session_hash=nobody",
                       headers={"Authorization": f"Bearer {JSON_KEYS[0]}"}, timeout=30)  # fmt: skip
    assert answer.status_code == 200 and "session_not_found" in answer.text
    log = new_log(guarded_app, since)
    assert " ERROR " not in log and "Traceback" not in log, log
    assert "refused after its answer began (404" in log


def test_no_secret_of_the_settings_reaches_the_log(guarded_app: AppProcess) -> None:
    log = guarded_app.log()
    assert "result cache: redis at" in log and "?password=***" in log
    for secret in (REDIS_SECRET, PASSWORD, *JSON_KEYS):
        assert secret not in log, secret
