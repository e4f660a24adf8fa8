"""The unit tier: the app in-process (tests/support/inprocess.py), one shared per session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sensevoice_server.settings import Settings
from tests.support.inprocess import InProcessApp, running_app


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[InProcessApp]:
    """The app with small limits, so tests reach them with small files."""
    small = settings.model_copy(update={"max_upload_mb": 2.0, "max_duration_s": 20.0})
    async with running_app(small) as running:
        yield running
