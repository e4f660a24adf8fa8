"""`python -m sensevoice_server.cli choose-backend EXPORT_DIR`: which CPU runtime serves it.

With --backend auto on a CPU and OpenVINO installed, the server runs this once per export
and machine (in a child process, so that it never holds the candidates it does not serve)
and records the answer; run it yourself to see each runtime's time and agreement with fp32
on this machine.
"""

from __future__ import annotations

import argparse

from sensevoice_server.cli.int8_check import export_command
from sensevoice_server.logs import configure_logging


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    choose = export_command(
        commands, "choose-backend", __doc__,
        help="time the CPU runtimes on an export and record the fastest that agrees with fp32",
        audio_help="audio to compare with fp32 on (default: the clips shipped in the package)",
    )  # fmt: skip
    choose.add_argument("--calls", type=int, default=2,
                        help="model calls at once, sharing the threads (default 2)")  # fmt: skip
    choose.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    configure_logging("info")
    from sensevoice_server.engine.backend_choice import Threads, measure_and_record

    threads = Threads(args.ncpu, min(args.calls, args.ncpu))
    choice = measure_and_record(args.export_dir, threads, args.calibration_audio)
    print(f"chosen: {choice.describe()}")
    return 0
