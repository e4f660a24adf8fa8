"""The process: read the settings, check them, build the app, serve it until told to stop.

`sensevoice-server` (the console command `pip install .` gives) and `python
app_sensevoice.py` both run `main()`. A bad setting stops start-up within seconds with one
line naming it and exit status 2, and no traceback unless `--log-level debug`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence

from sensevoice_server.errors import StartupError
from sensevoice_server.logs import configure_logging
from sensevoice_server.settings import Settings, load_settings, unknown_variables

log = logging.getLogger("sensevoice_server")
PROG = "sensevoice-server"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv, prog=PROG)
    except StartupError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)  # before funasr is imported
    for name in unknown_variables():
        log.warning("%s is not a setting (typo?); see %s --help", name, PROG)
    try:
        return serve(settings)
    except StartupError as error:
        if settings.log_level == "debug":
            log.exception("start-up failed")
        log.error("%s", error)
        return 2


def serve(settings: Settings) -> int:
    import uvicorn

    sock = listen(settings)  # first: a port in use fails before seconds of imports
    from sensevoice_server.app import create_app
    from sensevoice_server.server import DrainingServer

    failures: list[Exception] = []

    def stop_on_fatal(error: Exception) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(settings, on_fatal=stop_on_fatal)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # the app logs each request once, with what it knows (middleware)
        timeout_graceful_shutdown=30,
        # WebSocket pings tolerate a busy server: a slow pong is not a dead client
        ws_ping_interval=20,
        ws_ping_timeout=60,
    )
    server = DrainingServer(config, app.state.transcriber, settings.drain_timeout_s)
    server.run(sockets=[sock])
    if failures:
        log.error("exiting: %s", failures[0])
        return 2 if isinstance(failures[0], StartupError) else 1
    return 0


def listen(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as error:
        sock.close()
        raise StartupError(
            f"--port {settings.port} (SENSEVOICE_PORT) / --host {settings.host}: cannot listen "
            f"there: {error.strerror or error}. Is another server running on it?"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run() -> None:
    """Console-script entry: exit without Python's slow teardown of torch and gradio.

    Server, engine and cache are closed by now. Python's own teardown of torch, funasr and
    gradio takes 4-13 s more, and Supervisor starts the replacement only after we exit, so
    it would widen the window in which nobody listens: skip it.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
