"""`python -m sensevoice_server.cli export MODEL_DIR [OUT_DIR]`: an ONNX export of a checkpoint.

The server makes the same export by itself at first start with --backend onnx (the CPU
default) and keeps it under ~/.cache/sensevoice/onnx/ (it runs this command in a subprocess);
run it yourself to make the export ahead of time, elsewhere, or to hand it to sherpa-onnx
(the layout and metadata are sherpa-onnx's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensevoice_server.logs import configure_logging


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="export a SenseVoiceSmall checkpoint to ONNX (fp32 and int8)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    export.add_argument("model_dir", type=Path, help="a SenseVoiceSmall checkpoint directory")
    export.add_argument("out_dir", type=Path, nargs="?",
                        help="where to write it (default: MODEL_DIR-onnx)")  # fmt: skip
    export.add_argument("--no-int8", action="store_true", help="fp32 only")
    export.add_argument("--calibration-audio", type=Path, metavar="DIR",
                        help="audio that fixes int8's activation scales (default: the "
                             "synthetic clips shipped in the package)")  # fmt: skip
    export.add_argument("--int8-attention", choices=("auto", "signed", "unsigned"),
                        default="auto",
                        help="signed: faster attention on CPUs with VNNI or AMX; unsigned: "
                             "exact on AVX2 alone (default auto: what this CPU takes)")  # fmt: skip
    export.set_defaults(run=run)
    vad = commands.add_parser(
        "export-vad",
        help="export an FSMN VAD's network (fsmn-vad) to ONNX",
        description="The server makes this export by itself at first start with an FSMN VAD "
        "(the default fsmn-vad) and keeps it under ~/.cache/sensevoice/fsmn-vad/.",
    )
    vad.add_argument("vad_dir", type=Path, help="an FSMN VAD directory (config.yaml, model.pt)")
    vad.add_argument("out_dir", type=Path, nargs="?",
                     help="where to write model.onnx (default: VAD_DIR-onnx)")  # fmt: skip
    vad.set_defaults(run=run_vad)
    add_silero_parser(commands)


def run(args: argparse.Namespace) -> int:
    # imported here: torch and funasr load for this command only, not for every CLI command
    from sensevoice_server.engine.export import export

    if (paths := source_and_out("model", args.model_dir, args.out_dir)) is None:
        return 2
    source, out = paths
    signed = {"auto": None, "signed": True, "unsigned": False}[args.int8_attention]
    export(source, out, int8=not args.no_int8, calibration_audio=args.calibration_audio,
           signed_attention=signed)  # fmt: skip
    print(out)
    return 0


def run_vad(args: argparse.Namespace) -> int:
    from sensevoice_server.engine.fsmn_export import export_fsmn_vad

    if (paths := source_and_out("vad_model", args.vad_dir, args.out_dir)) is None:
        return 2
    print(export_fsmn_vad(*paths))
    return 0


def source_and_out(setting: str, given: Path, out: Path | None) -> tuple[Path, Path] | None:
    """The checked source directory and where its export goes (default: beside it, named
    SOURCE-onnx); None, with the reason on stderr, for a directory that is not a model."""
    from sensevoice_server.model_source import check_directory

    configure_logging("info")
    try:
        source = check_directory(setting, str(given))
    except Exception as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    return source, out or source.with_name(source.name + "-onnx")


def add_silero_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silero = commands.add_parser(
        "export-silero",
        help="silero VAD's ONNX file with its convolutions as 2-D ones (faster here)",
        description="The server makes this file by itself at first start (silero is the live "
        "VAD, and --vad-model silero-vad's) and keeps it under ~/.cache/sensevoice/silero-vad/.",
    )
    silero.add_argument("shipped", type=Path, help="silero_vad_16k_sequence.onnx")
    silero.add_argument("out_dir", type=Path, help="where to write model.onnx")
    silero.set_defaults(run=run_silero)


def run_silero(args: argparse.Namespace) -> int:
    from sensevoice_server.engine.silero_2d import write_2d

    print(write_2d(args.shipped, args.out_dir))
    return 0
