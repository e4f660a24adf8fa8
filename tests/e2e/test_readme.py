"""Every command and code example in the README, run as written (against a real server where
it talks to one), so the README cannot drift from the code. A command no rule below knows
fails the test: a new example needs a way to be checked."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sensevoice_server.testing.servers import ROOT, AppProcess

README = (ROOT / "README.md").read_text()
URL = "http://127.0.0.1:7860"
NOT_RUN = {  # why these are not run here
    "bash scripts/run-tests.sh": "the suite itself (tests/unit/test_docs.py checks CI runs it)",
    ".venv/bin/ruff format": "run by scripts/run-tests.sh before pytest",
    ".venv/bin/python -m bench.": "a benchmark: minutes of work on the full-size model",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def commands() -> list[str]:
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("  #")[0].strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_the_readme_has_examples() -> None:
    assert len(commands()) >= 10 and len(blocks("python")) >= 2


def test_every_readme_command_runs(
    app_server: AppProcess, tiny_model: Path, tmp_path: Path, model_env: dict[str, str]
) -> None:
    for command in commands():
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        args = shlex.split(command.replace(URL, app_server.url))
        builds_its_own = "sensevoice_server.testing.checkpoint" in args
        args = [
            str(tiny_model) if a == "/tmp/sensevoice-tiny" and not builds_its_own
            else str(tmp_path / Path(a).name) if a.startswith("/tmp/") else a
            for a in args
        ]  # fmt: skip
        if args[0] == "curl":
            done = run([*args, "--fail-with-body", "-sS"])
        elif args[:2] == ["bash", "scripts/run-app.sh"]:
            done = run([*args, "--help"])  # the flags as written parse; serving is tested elsewhere
            assert "SENSEVOICE_MODEL" in done.stdout, command
        elif "sensevoice_server.cli" in args and "stream" in args:
            done = run([*args, "--speed", "0"])
            assert re.search(r"\] en neutral - \S", done.stdout), done.stdout
        elif "sensevoice_server.cli" in args and "batch" in args:
            done = run(args)
            assert list((tmp_path / "transcripts").rglob("*.srt")), done.stderr
        elif "sensevoice_server.cli" in args and "corpus" in args:
            done = run(args, env=model_env)
            listed = (tmp_path / "manifest" / "files.jsonl").read_text().splitlines()
            assert len(listed) >= 6 and '"done"' in listed[0], done.stderr
        elif "sensevoice_server.cli" in args and "int8-check" in args:
            done = run(args, env=model_env)
            assert "int8 agrees with fp32 on" in done.stdout, done.stderr
        elif "sensevoice_server.testing.checkpoint" in args or "export" in args:
            done = run(args, env=model_env)
        else:
            pytest.fail(f"the README command {command!r} has no way to be checked here")
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (command, done.stderr[-2000:])


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_readme_python_example_runs(app_server: AppProcess, index: int) -> None:
    code = blocks("python")[index].replace(URL, app_server.url)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
