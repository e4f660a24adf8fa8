"""The app in this process, driven over httpx's ASGI transport: no socket, the real code.

The lifespan runs (the model loads, tiny: 0.1 s), so everything but the network is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from sensevoice_server.api.deps import services_of
from sensevoice_server.app import create_app
from sensevoice_server.engine import Engine, EngineSettings
from sensevoice_server.settings import Settings


@dataclass
class InProcessApp:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def transcriber(self):  # type: ignore[no-untyped-def]
        return services_of(self.app).transcriber


@asynccontextmanager
async def running_app(
    settings: Settings, *, ready: bool = True, lifespan: bool = True
) -> AsyncIterator[InProcessApp]:
    """An app built from `settings`, its lifespan entered (the model loads; `lifespan=False`
    for tests of what answers without a model), and a client for it."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
            if ready:
                await wait_ready(app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://app")
        )
        yield InProcessApp(app, client)


async def wait_ready(app: FastAPI, timeout: float = 120) -> None:
    transcriber = services_of(app).transcriber
    async with asyncio.timeout(timeout):
        while not transcriber.ready:
            if transcriber.failure:
                raise transcriber.failure
            await asyncio.sleep(0.05)


def changed(settings: Settings, **changes: object) -> Settings:
    """`settings` with some fields changed, validated as at start-up (model_copy would not)."""
    return Settings(**{**settings.model_dump(), **changes})


def started_engine(settings: Settings, **changes: object) -> Engine:
    """An engine for `settings` with some fields changed, its models loaded."""
    engine = Engine(EngineSettings.of(changed(settings, **changes)))
    engine.start()
    assert engine.wait_ready(120), engine.failure
    return engine
