"""The web UI's queue as the settings say (ui_queue_size: events waiting before Gradio says
"Queue is full"; ui_concurrency: events of one kind running at once). ui/uploads.py hands
them to the Blocks at construction, whose own `queue()` call takes them: a second call would
build Gradio's whole app again."""

from __future__ import annotations

from starlette.routing import Mount

from sensevoice_server.app import create_app
from sensevoice_server.settings import Settings


def test_the_ui_queue_takes_its_size_and_concurrency_from_the_settings(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"ui_queue_size": 7, "ui_concurrency": 3}))
    blocks = next(route.app.blocks for route in app.routes if isinstance(route, Mount))
    queue = blocks._queue  # Gradio keeps it private; what it enforces is these two
    assert (queue.max_size, queue.default_concurrency_limit) == (7, 3)
