"""Command-line clients: `python -m sensevoice_server.cli stream|batch ...`."""
