"""`python -m sensevoice_server.cli` works from any directory, with paths relative to it.

Before, it worked only from the repository root: scripts/install.sh installed the
requirements into .venv but not the package, so Python found `sensevoice_server` only in the
current directory ("No module named 'sensevoice_server'" anywhere else). install.sh now
installs the package too (editable: a link to the checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from sensevoice_server.testing.servers import AppProcess
from tests.support.samples import SAMPLES

NOT_INSTALLED = "the package is not installed in this Python: run scripts/install.sh"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as a user types it in `cwd`, with none of pytest's path set-up."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "sensevoice_server.cli", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_help_outside_the_checkout(tmp_path: Path) -> None:
    done = cli("--help", cwd=tmp_path)
    assert "No module named" not in done.stderr, NOT_INSTALLED
    assert done.returncode == 0, done.stderr
    commands = "stream,batch,corpus,export,export-vad,export-silero,int8-check,choose-backend"
    assert "{" + commands + "}" in done.stdout


def test_batch_from_another_directory_reads_and_writes_relative_paths(
    app_server: AppProcess, tmp_path: Path
) -> None:
    shutil.copy(SAMPLES / "en.wav", tmp_path / "en.wav")
    done = cli("batch", "en.wav", "--out", "out", "--format", "text", "--url", app_server.url,
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    clip = {"file": ("en.wav", (SAMPLES / "en.wav").read_bytes())}
    api = httpx.post(f"{app_server.url}/api/transcribe", files=clip, timeout=60)
    assert (tmp_path / "out" / "en.txt").read_text().strip() == api.json()["text"].strip()
