"""Entry point: `python app_sensevoice.py --help`.

Loads SenseVoiceSmall with its VAD once and serves the web UI at `/`, the Gradio client
API, the HTTP API and health checks from this one process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

import uvicorn

from sensevoice_server.logs import configure_logging
from sensevoice_server.settings import Settings

log = logging.getLogger("sensevoice_server")


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains the model's queue while still answering.

    Plain uvicorn stops listening at once on SIGTERM. We keep listening so that new
    requests get a clear 503 (and /ready turns 503 for load balancers) while running and
    queued transcriptions finish; then uvicorn's own graceful shutdown takes over.
    A second signal exits at once.
    """

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        engine = self.config.app.state.transcriber.engine
        if self.draining or sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        engine.stop_accepting()
        log.info("SIGTERM: draining %d job(s) before exit", engine.queue_depth)
        threading.Thread(target=self._drain_then_exit, args=(engine,), daemon=True).start()

    def _drain_then_exit(self, engine) -> None:
        if not engine.wait_idle(self.settings.drain_timeout_s):
            log.warning("drain timeout: exiting with %d job(s) unfinished", engine.queue_depth)
        self.should_exit = True


def main() -> int:
    settings = Settings(
        _cli_parse_args=True,
        _cli_kebab_case=True,
        _cli_prog_name="python app_sensevoice.py",
        _cli_implicit_flags=True,
    )
    configure_logging(settings.log_level)  # before funasr is imported: it configures logging too
    from sensevoice_server.app import create_app

    failures: list[Exception] = []

    def stop_on_fatal(error: Exception) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(settings, on_fatal=stop_on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
        # WebSocket pings tolerate a busy server: a slow pong is not a dead client
        ws_ping_interval=20,
        ws_ping_timeout=60,
    )
    server = DrainingServer(config, settings)
    server.run()
    if failures:
        log.error("exiting: %s", failures[0])
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # Server, engine and cache are closed by now. Python's own teardown of torch, funasr and
    # gradio takes 4-13 s more, and Supervisor starts the replacement only after we exit, so
    # it would widen the window in which nobody listens: skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
