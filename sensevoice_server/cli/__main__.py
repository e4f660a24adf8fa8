"""`python -m sensevoice_server.cli COMMAND ...`: the command-line clients."""

from __future__ import annotations

import argparse
import sys

from sensevoice_server.cli import batch, corpus, stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sensevoice_server.cli",
        description="Command-line clients of the SenseVoice service.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stream.add_parser(commands)
    batch.add_parser(commands)
    corpus.add_parser(commands)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
