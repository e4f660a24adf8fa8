"""Who may use what, for each combination of API keys, UI password and the UI opt-out; how
guessing is slowed, how a login ends, and that no secret is shown in a message or a log."""

from __future__ import annotations

import asyncio
import contextvars
import logging

import httpx
import pytest

from sensevoice_server.cache.result_cache import open_store
from sensevoice_server.errors import StartupError
from sensevoice_server.logs import (
    HANDSHAKE_NOT_DONE,
    QuietDeniedHandshake,
    Redacted,
    websocket_denied_on_purpose,
)
from sensevoice_server.settings import Settings, load_settings
from tests.support.inprocess import InProcessApp, changed, running_app

pytestmark = pytest.mark.anyio


async def statuses(settings: Settings, **changes: object) -> dict[str, int]:
    """What the API, the Gradio API and the page answer a stranger (no model needed)."""
    async with running_app(changed(settings, **changes), lifespan=False) as app:
        api = await app.client.get("/v1/models")
        return {
            "api": api.status_code,
            "ui": (await app.client.get("/config")).status_code,
            "page": (await app.client.get("/", headers={"Accept": "text/html"})).status_code,
        }


async def test_no_keys_and_no_password_leave_everything_open(settings: Settings) -> None:
    assert await statuses(settings) == {"api": 200, "ui": 200, "page": 200}


async def test_keys_close_the_api_and_the_ui(settings: Settings) -> None:
    got = await statuses(settings, api_keys=["k1"])
    assert got == {"api": 401, "ui": 401, "page": 303}


async def test_the_operator_may_open_the_ui_on_purpose(settings: Settings) -> None:
    got = await statuses(settings, api_keys=["k1"], ui_public=True)
    assert got == {"api": 401, "ui": 200, "page": 200}


async def test_a_ui_password_alone_closes_the_ui_only(settings: Settings) -> None:
    assert await statuses(settings, ui_auth="alice:wonderland") == {
        "api": 200, "ui": 401, "page": 303,
    }  # fmt: skip
    async with running_app(changed(settings, ui_auth="alice:wonderland"), lifespan=False) as app:
        wrong = await app.client.post("/login", data={"user": "alice", "password": "x"})
        assert wrong.status_code == 401
        login = await app.client.post(
            "/login", data={"user": "alice", "password": "wonderland", "next": "/"}
        )
        assert login.status_code == 303
        cookie = login.cookies["sensevoice_login"]
        config = await app.client.get("/config", cookies={"sensevoice_login": cookie})
        assert config.status_code == 200


# --- guessing, logins and secrets ----------------------------------------------------------
def client_at(app: InProcessApp, address: str) -> httpx.AsyncClient:
    """A client of the same app that connects from `address`."""
    transport = httpx.ASGITransport(app=app.app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://app")


async def test_failed_logins_make_that_address_wait_and_only_that_one(settings: Settings) -> None:
    """After auth_free_failures wrong passwords an address gets 429 with Retry-After, even
    for the right password (a right guess must look like a wrong one); another address is
    still heard, and the right password works once the wait is over."""
    guarded = changed(settings, ui_auth="alice:wonderland", auth_free_failures=3)
    async with (
        running_app(guarded, lifespan=False) as app,
        client_at(app, "10.0.0.66") as guesser,
        client_at(app, "10.0.0.7") as user,
    ):
        statuses = []
        for n in range(5):
            wrong = await guesser.post("/login", data={"user": "alice", "password": f"{n}"})
            statuses.append(wrong.status_code)
        assert statuses == [401, 401, 401, 429, 429]
        assert wrong.headers["Retry-After"] == "1" and "try again in 1 s" in wrong.text
        right = {"user": "alice", "password": "wonderland"}
        assert (await guesser.post("/login", data=right)).status_code == 429
        assert (await user.post("/login", data=right)).status_code == 303
        await asyncio.sleep(1.05)
        assert (await guesser.post("/login", data=right)).status_code == 303


async def test_wrong_bearer_keys_make_that_address_wait(settings: Settings) -> None:
    async with running_app(changed(settings, api_keys=["k1"], auth_free_failures=2),
                           lifespan=False) as app:  # fmt: skip
        async with client_at(app, "10.0.0.66") as guesser:
            got = [(await guesser.get("/v1/models", headers={"Authorization": f"Bearer {n}"}))
                   for n in range(3)]  # fmt: skip
            assert [r.status_code for r in got] == [401, 401, 429]
            assert got[-1].json()["error"]["code"] == "too_many_failures"
            assert got[-1].headers["Retry-After"] == "1"
            ui = await guesser.get("/config", headers={"Authorization": "Bearer k1"})
            assert ui.status_code == 429  # the Gradio mount counts the same failures
        ok = await app.client.get("/v1/models", headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 200


async def test_logout_is_a_post_that_ends_the_login(settings: Settings) -> None:
    """The cookie names a login the server holds; after POST /logout a copy of it is
    worthless. GET /logout only shows the button (a link or a prefetch logs nobody out)."""
    async with running_app(changed(settings, api_keys=["k1"]), lifespan=False) as app:
        login = await app.client.post("/login", data={"user": "", "password": "k1"})
        cookie = {"sensevoice_login": login.cookies["sensevoice_login"]}
        assert (await app.client.get("/config", cookies=cookie)).status_code == 200
        page = await app.client.get("/logout", cookies=cookie)
        assert page.status_code == 200 and 'method="post"' in page.text
        assert (await app.client.get("/config", cookies=cookie)).status_code == 200
        out = await app.client.post("/logout", cookies=cookie)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await app.client.get("/config", cookies=cookie)).status_code == 401
    async with running_app(changed(settings, api_keys=["k2"]), lifespan=False) as rotated:
        assert (await rotated.client.get("/config", cookies=cookie)).status_code == 401


@pytest.mark.parametrize("variable", ["SENSEVOICE_API_KEYS", "SENSEVOICE_MODEL_ALIASES"])
@pytest.mark.parametrize("value", ['["a-1", "b-2"]', "a-1, b-2", ' [ "a-1","b-2" ] '])
def test_list_settings_take_a_json_list_or_commas(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    loaded = load_settings([])
    items = loaded.api_keys if variable == "SENSEVOICE_API_KEYS" else loaded.model_aliases
    assert [getattr(i, "get_secret_value", lambda i=i: i)() for i in items] == ["a-1", "b-2"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SENSEVOICE_UI_AUTH", "hunter2-without-a-user"),
        ("SENSEVOICE_API_KEYS", '["hunter2-one", "hunter2-two"'),
        ("SENSEVOICE_API_KEYS", '["hunter2-one", 2]'),
    ],
)
def test_a_bad_secret_setting_is_named_but_never_shown(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StartupError) as refused:
        load_settings([])
    assert variable in str(refused.value) and "not shown" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_bad_cache_url_is_named_without_its_password() -> None:
    with pytest.raises(ValueError) as refused:
        open_store("mongodb://u:hunter2@h/?password=hunter2", max_bytes=1, ttl_s=None)
    assert "mongodb://u:***@h/?password=***" in str(refused.value)


def test_log_lines_carry_no_secret_in_any_url_form() -> None:
    formatter = Redacted(logging.Formatter("%(message)s"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", None, None)
    record.args = ("redis://h/0?password=hunter2", "/ws?api%5Fkey=hunter2")
    assert "hunter2" not in formatter.format(record)


def test_a_denied_websocket_does_not_log_uvicorns_handshake_error() -> None:
    """uvicorn's ERROR after a refused upgrade is dropped only where we refused on purpose."""
    quiet = QuietDeniedHandshake()
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, HANDSHAKE_NOT_DONE,
                               None, None)  # fmt: skip
    assert quiet.filter(record)  # a handshake left unfinished by a bug still logs

    def denied() -> bool:
        websocket_denied_on_purpose()
        return quiet.filter(record)

    assert not contextvars.copy_context().run(denied)
