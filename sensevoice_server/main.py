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
from sensevoice_server.model_source import ModelSource, resolve
from sensevoice_server.settings import Settings, load_settings, unknown_variables

log = logging.getLogger("sensevoice_server")
PROG = "sensevoice-server"
GRACEFUL_CLOSE_S = 5  # uvicorn's own close, after our drain (see run())


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
    settings, sources = resolve(settings)  # before serving: where the models come from
    # Decoding, VAD and the model run in threads that hold the GIL between C calls; handing
    # it over every 1 ms instead of 5 keeps the event loop (and /health) answering fast.
    sys.setswitchinterval(0.001)
    from sensevoice_server.core import build_transcriber

    failures: list[Exception] = []
    server: DrainingServer | None = None

    def stop_on_fatal(error: Exception) -> None:
        failures.append(error)
        if server is not None:
            server.should_exit = True

    transcriber = build_transcriber(settings, on_fatal=stop_on_fatal)
    # where it is safe, the models load in the engine's threads while the web app's modules
    # import (Gradio's alone take about 2 s): ready that much sooner
    transcriber.engine.start_early()
    from sensevoice_server.api.deps import services_of
    from sensevoice_server.app import create_app
    from sensevoice_server.server import DrainingServer

    app = create_app(settings, transcriber=transcriber)
    services = services_of(app)
    log_summary(settings, sources, services.transcriber.info())
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # the app logs each request once, with what it knows (middleware)
        # after the drain no transcription is left: what stays open is Gradio's event
        # streams and idle sockets, which never end by themselves (an open browser tab
        # held every restart for the whole timeout); a few seconds flush last answers
        timeout_graceful_shutdown=GRACEFUL_CLOSE_S,
        # WebSocket pings tolerate a busy server: a slow pong is not a dead client
        ws_ping_interval=20,
        ws_ping_timeout=60,
    )
    server = DrainingServer(config, services.transcriber, services.live_sessions,
                            settings.drain_timeout_s)  # fmt: skip
    if failures:  # the load failed while the app was being built: nothing to serve
        return 2 if isinstance(failures[0], StartupError) else 1
    server.run(sockets=[sock])
    if failures:  # the engine has logged why
        return 2 if isinstance(failures[0], StartupError) else 1
    return 0


def log_summary(settings: Settings, sources: list[ModelSource], engine: dict[str, str]) -> None:
    """What this process serves, once, in a few lines a person reads at start-up."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    by_setting = {source.setting: source for source in sources}
    log.info("model: %s", by_setting["model"].describe())
    log.info("VAD: %s", by_setting["vad_model"].describe())
    log.info("device: %s (--device %s), backend: %s %s, %d CPU threads", engine["device"],
             settings.device, engine["backend"], engine["precision"], settings.ncpu)  # fmt: skip
    log.info("web UI: %s/   API docs: %s/docs   health: %s/health", url, url, url)


def listen(settings: Settings) -> socket.socket:
    """The listening socket, bound before anything slow happens.

    Made with the TCP protocol number: asyncio sets TCP_NODELAY only on sockets whose
    `proto` says TCP, and without it a keep-alive client waits 40 ms per answer (Nagle's
    algorithm against delayed ACKs).
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise StartupError(
            f"--port {settings.port} (SENSEVOICE_PORT) / --host {settings.host}: cannot listen "
            f"there: {error.strerror or error}. Is another server running on it?"
        ) from None
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
