"""A file over the duration limit is refused with what a person needs to act on it: how long
the file is, what the limit is, and which setting raises it."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from sensevoice_server.audio import AudioLimits, decode, too_long
from sensevoice_server.errors import TooLong
from sensevoice_server.settings import flag, variable
from sensevoice_server.testing.audio_files import wav_bytes
from tests.support.inprocess import InProcessApp

SETTING = f"{variable('max_duration_s')} ({flag('max_duration_s')})"


def noise(seconds: float) -> bytes:
    return wav_bytes(np.random.default_rng(2).normal(0, 0.1, int(seconds * 16_000)))


def test_the_refusal_names_the_files_length_the_limit_and_the_setting() -> None:
    with pytest.raises(TooLong) as refused:
        decode(noise(25), AudioLimits(max_bytes=10**8, max_duration_s=20))
    message = str(refused.value)
    assert message.startswith("The audio is 25.0 seconds long, longer than the limit of 20 ")
    assert SETTING == "SENSEVOICE_MAX_DURATION_S (--max-duration-s)"
    assert SETTING in message


def test_without_a_stated_length_the_refusal_still_names_the_limit_and_the_setting() -> None:
    """A container that states no duration is decoded up to the limit and no further, so its
    length is not known: the answer does not guess one."""
    message = str(too_long(20.0))
    assert message.startswith("The audio is longer than the limit of 20 seconds.")
    assert SETTING in message


@pytest.mark.anyio
@pytest.mark.parametrize("route", ["/api/transcribe", "/v1/audio/transcriptions"])
async def test_the_api_answer_says_the_same(app: InProcessApp, route: str) -> None:
    """The unit tier's app allows 20 s; a 30 s upload gets a 413 a person can act on."""
    form = {"model": "whisper-1"} if route.startswith("/v1") else {}
    answer: httpx.Response = await app.client.post(
        route, files={"file": ("long.wav", noise(30))}, data=form
    )
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "audio_too_long"
    assert "30.0 seconds long" in error["message"] and "limit of 20 seconds" in error["message"]
    assert SETTING in error["message"]
