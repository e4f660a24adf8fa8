"""Run one of the package's own commands in a child process, its output in our log.

Work that needs torch (an export) or a second large model (the int8 check's fp32) runs in a
child process: the serving process keeps neither module nor memory of it, since what a
process has mapped or allocated is only given back to the system when it ends.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def run_cli(*arguments: str, label: str) -> int:
    """`python -m sensevoice_server.cli ARGUMENTS...`; returns its exit status. Its lines are
    logged as `label: line`, warnings left out (torch's export chatter)."""
    command = [sys.executable, "-m", "sensevoice_server.cli", *arguments]
    package_root = str(Path(__file__).resolve().parents[2])  # importable from anywhere
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONPATH": path}) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() and "WARNING" not in line:
                log.info("%s: %s", label, line.rstrip().split(": ", 1)[-1])
    return process.returncode
