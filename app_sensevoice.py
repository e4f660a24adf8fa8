"""Entry point: `python app_sensevoice.py --help`.

Loads SenseVoiceSmall with its VAD once and serves the web UI at `/`, the Gradio client
API, the HTTP API and health checks from this one process.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from sensevoice_server.logs import configure_logging
from sensevoice_server.settings import Settings


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
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None)
    server = uvicorn.Server(config)
    server.run()
    if failures:
        logging.getLogger("sensevoice").error("exiting: %s", failures[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
