"""`python -m sensevoice_server.cli int8-check EXPORT_DIR`: how often int8 agrees with fp32.

The server runs this once per export (in a child process, so that it never holds the fp32
model) and records the answer; run it yourself to see how an export does on your own audio
(--calibration-audio DIR) before you serve it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sensevoice_server.logs import configure_logging


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = export_command(
        commands, "int8-check", __doc__,
        help="compare an export's int8 model with its fp32 model on calibration audio",
        audio_help="audio to compare on (default: the clips shipped in the package)",
    )  # fmt: skip
    check.set_defaults(run=run)


def export_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
    doc: str | None, *, help: str, audio_help: str,
) -> argparse.ArgumentParser:  # fmt: skip
    """A command over an export, run on calibration audio with some threads: this one and
    choose-backend (cli/choose_backend.py)."""
    parser = commands.add_parser(
        name, help=help, description=(doc or "").split("\n\n")[1].replace("\n", " ")
    )
    parser.add_argument("export_dir", type=Path, help="an export (model.onnx, model.int8.onnx)")
    parser.add_argument("--calibration-audio", metavar="DIR", help=audio_help)
    parser.add_argument("--ncpu", type=int, default=2, help="CPU threads (default 2)")
    return parser


def run(args: argparse.Namespace) -> int:
    configure_logging("info")
    from sensevoice_server.engine.int8_check import run_and_record

    result = run_and_record(args.export_dir, args.calibration_audio, args.ncpu)
    print(result.describe())
    return 0
