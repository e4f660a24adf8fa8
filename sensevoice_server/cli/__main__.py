"""`python -m sensevoice_server.cli COMMAND ...`: the command-line tools (clients, batch and
corpus jobs, the ONNX export and its int8 check)."""

from __future__ import annotations

import argparse
import sys

from sensevoice_server.cli import batch, choose_backend, corpus, export, int8_check, stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sensevoice_server.cli",
        description="Command-line tools of the SenseVoice service.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stream.add_parser(commands)
    batch.add_parser(commands)
    corpus.add_parser(commands)
    export.add_parser(commands)
    int8_check.add_parser(commands)
    choose_backend.add_parser(commands)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
