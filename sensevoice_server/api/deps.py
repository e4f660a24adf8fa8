"""What routes take from the app: the objects the composition root built, as typed deps."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sensevoice_server.service import Transcriber
from sensevoice_server.settings import Settings


def transcriber_of(request: Request) -> Transcriber:
    transcriber: Transcriber = request.app.state.transcriber
    return transcriber


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


TranscriberDep = Annotated[Transcriber, Depends(transcriber_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
