"""Who may use what, for each combination of API keys, UI password and the UI opt-out."""

from __future__ import annotations

import pytest

from sensevoice_server.settings import Settings
from tests.support.inprocess import changed, running_app

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
