"""What routes take from the app: the objects the composition root built, as typed deps.

The composition root hands them over once (`provide`); routes, WebSocket handlers, the
middleware's checks and the server read them through here, never through `app.state` by
name, so a type checker sees every use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from sensevoice_server.api.credentials import Credentials
from sensevoice_server.live import LiveSessions
from sensevoice_server.metrics import Metrics
from sensevoice_server.settings import Settings
from sensevoice_server.transcriber import Transcriber


@dataclass(frozen=True)
class Services:
    settings: Settings
    transcriber: Transcriber
    live_sessions: LiveSessions
    credentials: Credentials
    metrics: Metrics


def provide(app: Starlette, services: Services) -> None:
    app.state.services = services


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


def transcriber_of(connection: HTTPConnection) -> Transcriber:
    return services_of(connection.app).transcriber


def settings_of(connection: HTTPConnection) -> Settings:
    return services_of(connection.app).settings


def live_sessions_of(connection: HTTPConnection) -> LiveSessions:
    return services_of(connection.app).live_sessions


def credentials_of(connection: HTTPConnection) -> Credentials:
    return services_of(connection.app).credentials


def metrics_of(connection: HTTPConnection) -> Metrics:
    return services_of(connection.app).metrics


TranscriberDep = Annotated[Transcriber, Depends(transcriber_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
LiveSessionsDep = Annotated[LiveSessions, Depends(live_sessions_of)]
CredentialsDep = Annotated[Credentials, Depends(credentials_of)]
MetricsDep = Annotated[Metrics, Depends(metrics_of)]
