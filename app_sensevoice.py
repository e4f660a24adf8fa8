"""Entry point: `python app_sensevoice.py --help` (the same as the `sensevoice-server` command).

Loads SenseVoiceSmall with its VAD once and serves the web UI at `/`, the Gradio client
API, the HTTP API, live streaming and health checks from this one process.
"""

from sensevoice_server.main import run

if __name__ == "__main__":
    run()
