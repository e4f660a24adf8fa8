"""`python -m sensevoice_server.export MODEL_DIR [OUT_DIR]`: an ONNX export of a checkpoint.

The server makes the same export by itself at first start with --backend onnx (the CPU
default) and keeps it under ~/.cache/sensevoice/onnx/; run this to make it ahead of time,
elsewhere, or to hand it to sherpa-onnx (the layout and metadata are sherpa-onnx's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensevoice_server.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensevoice_server.export",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("model_dir", type=Path, help="a SenseVoiceSmall checkpoint directory")
    parser.add_argument("out_dir", type=Path, nargs="?",
                        help="where to write it (default: MODEL_DIR-onnx)")  # fmt: skip
    parser.add_argument("--no-int8", action="store_true", help="fp32 only")
    parser.add_argument("--calibration-audio", type=Path, metavar="DIR",
                        help="audio that fixes int8's activation scales (default: the "
                             "synthetic clips shipped in the package)")  # fmt: skip
    args = parser.parse_args(argv)
    configure_logging("info")
    from sensevoice_server.engine.export import export
    from sensevoice_server.model_source import check_directory

    try:
        source = check_directory("model", str(args.model_dir))
    except Exception as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out_dir or source.with_name(source.name + "-onnx")
    export(source, out, int8=not args.no_int8, calibration_audio=args.calibration_audio)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
