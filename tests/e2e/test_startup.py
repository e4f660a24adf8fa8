"""Start-up as a newcomer meets it: a bad setting stops the process within seconds, with one
line naming the setting, exit status 2, and no traceback; an optional cache that does not
answer only warns."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sensevoice_server.engine.backends.onnx import export_in_subprocess
from sensevoice_server.engine.calibration import clip_files
from sensevoice_server.testing.servers import ROOT, AppProcess, free_port, run_app
from sensevoice_server.testing.trained_model import write_trained
from sensevoice_server.testing.wrong_scales import with_wrong_scales


def start(
    env: dict[str, str], *args: str, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "app_sensevoice.py"), *args],
        env={**os.environ, "SENSEVOICE_PORT": str(free_port()), **env},
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done, time.monotonic() - started


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "ValidationError" not in output, output
    assert "Uvicorn running" not in output, output
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--port", "abc"], {}, ["--port", "valid integer", "'abc'"]),
        (["--queue-size", "-1"], {}, ["--queue-size", "greater than or equal to 1"]),
        ([], {"SENSEVOICE_QUEUE_SIZE": "many"}, ["SENSEVOICE_QUEUE_SIZE", "valid integer"]),
        (["--device", "gpu"], {}, ["--device", "auto, cpu or cuda:N"]),
        (["--log-level", "loud"], {}, ["--log-level", "'debug'"]),
    ],
    ids=["port-abc", "queue-negative", "env-not-a-number", "device", "log-level"],
)
def test_a_bad_value_is_one_line_naming_the_setting(
    model_env: dict[str, str], args: list[str], env: dict[str, str], words: list[str]
) -> None:
    done, took = start({**model_env, **env}, *args)
    assert_one_clear_line(done, *words)
    assert took < 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SENSEVOICE_UI_AUTH", "hunter2-but-no-user"),
        ("SENSEVOICE_API_KEYS", '["hunter2-one", "hunter2-two"'),  # a JSON list, unclosed
    ],
    ids=["ui-auth", "api-keys"],
)
def test_a_bad_secret_setting_is_named_but_its_value_never_shown(
    model_env: dict[str, str], variable: str, value: str
) -> None:
    done, _ = start({**model_env, variable: value})
    assert_one_clear_line(done, variable, "not shown")
    assert "hunter2" not in done.stdout + done.stderr


def test_a_missing_model_directory_fails_at_once_naming_it(model_env: dict[str, str]) -> None:
    done, took = start({**model_env, "SENSEVOICE_MODEL": "/nonexistent/SenseVoiceSmall"})
    assert_one_clear_line(done, "--model /nonexistent/SenseVoiceSmall", "no such directory")
    assert took < 5


def test_a_directory_without_the_weights_says_which_file_is_missing(
    model_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "config.yaml").write_text("model: SenseVoiceSmall\n")
    done, _ = start({**model_env, "SENSEVOICE_MODEL": str(tmp_path)})
    assert_one_clear_line(done, "--model", "no model.pt")


def test_an_unknown_cache_url_stops_start_up(model_env: dict[str, str]) -> None:
    done, took = start({**model_env, "SENSEVOICE_CACHE_URL": "mongodb://x"})
    assert_one_clear_line(done, "--cache-url", "unknown cache URL")
    assert took < 10


def test_a_port_in_use_is_one_line(model_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, _ = start({**model_env, "SENSEVOICE_PORT": str(port)})
    assert_one_clear_line(done, f"--port {port}", "in use")


def test_an_unreachable_hub_gives_one_paragraph_within_seconds(model_env: dict[str, str]) -> None:
    env = {**model_env, "SENSEVOICE_MODEL": "iic/SenseVoiceSmall",
           "MODELSCOPE_CACHE": "/nonexistent-cache"}  # fmt: skip
    done, took = start(env)
    assert_one_clear_line(done, "iic/SenseVoiceSmall (--model)", "cannot be reached")
    assert "--model /path/to/SenseVoiceSmall" in done.stderr
    assert "is not registered" not in done.stderr
    assert took < 12


def assert_eventually_in(read, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in read():
        assert time.monotonic() < deadline, read()
        time.sleep(0.1)


def test_help_lists_every_flag_with_its_variable_and_default() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "app_sensevoice.py"), "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0
    assert "[default: 7860; env SENSEVOICE_PORT]" in " ".join(done.stdout.split())
    assert "wins over its variable" in done.stdout
    assert "pydantic" not in done.stdout.lower() and "CliSettings" not in done.stdout


def test_the_onnx_export_is_made_at_first_start_and_reused(
    model_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**model_env, "SENSEVOICE_BACKEND": "onnx", "XDG_CACHE_HOME": str(tmp_path)}
    with run_app(env, tmp_path) as first:
        assert "no ONNX export of" in first.log() and "export: ONNX export done" in first.log()
        assert httpx.get(f"{first.url}/ready").json()["precision"] == "int8"  # auto on a CPU
    exports = [path for path in (tmp_path / "sensevoice" / "onnx").iterdir() if path.is_dir()]
    assert len(exports) == 1 and (exports[0] / "model.int8.onnx").exists()
    stamp = (exports[0] / "model.onnx").stat().st_mtime_ns
    # the next start looks the export up the same way (the backend's own function, here)
    from sensevoice_server.engine.backends.onnx import exported

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert exported(model_env["SENSEVOICE_MODEL"]) == exports[0]
    assert (exports[0] / "model.onnx").stat().st_mtime_ns == stamp  # not exported twice


def test_a_corrupt_export_stops_start_up_with_one_line(
    model_env: dict[str, str], tiny_onnx: Path, tmp_path: Path
) -> None:
    broken = shutil.copytree(tiny_onnx, tmp_path / "broken")
    data = (broken / "model.onnx").read_bytes()
    (broken / "model.onnx").write_bytes(data[: len(data) // 3])
    env = {**model_env, "SENSEVOICE_BACKEND": "onnx", "SENSEVOICE_PRECISION": "fp32",
           "SENSEVOICE_ONNX_DIR": str(broken)}  # fmt: skip
    done, _ = start(env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot load it" in done.stderr and "Traceback" not in done.stderr


def test_an_int8_export_that_disagrees_with_fp32_is_replaced_by_fp32_in_one_line(
    model_env: dict[str, str], tmp_path: Path
) -> None:
    model = write_trained(tmp_path / "model")
    export_in_subprocess(model, tmp_path / "export")
    wrong = with_wrong_scales(tmp_path / "export", tmp_path / "wrong")
    env = {**model_env, "SENSEVOICE_MODEL": str(model), "SENSEVOICE_BACKEND": "onnx",
           "SENSEVOICE_ONNX_DIR": str(wrong)}  # fmt: skip
    with run_app(env, tmp_path) as app:
        assert httpx.get(f"{app.url}/ready").json()["precision"] == "fp32"
        [line] = [line for line in app.log().splitlines() if "int8 check" in line]
    assert "WARNING" in line and "serving fp32 instead" in line


def test_pip_install_gives_the_sensevoice_server_command(tmp_path: Path) -> None:
    """`pip install .` (dependencies left out here: the suite's venv has them) puts a
    `sensevoice-server` command next to the package, the same as app_sensevoice.py, and the
    int8 calibration clips and the trained test model inside it."""
    source = tmp_path / "source"  # a copy: pip builds in the tree it is given
    skip = shutil.ignore_patterns(".git", ".venv", "bench", "tests", "__pycache__", "*.egg-info",
                                  "build", ".*cache")  # fmt: skip
    shutil.copytree(ROOT, source, ignore=skip)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(site / "bin" / "sensevoice-server"), "--help"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[default: 7860; env SENSEVOICE_PORT]" in " ".join(done.stdout.split())
    installed = site / "sensevoice_server"
    clips = sorted(p.name for p in (installed / "engine" / "calibration_clips").iterdir())
    assert clips == sorted(p.name for p in clip_files())
    assert (installed / "testing" / "trained" / "weights.pt").exists()


def test_start_up_summarises_what_is_served_once(
    app_server: AppProcess, model_env: dict[str, str]
) -> None:
    """Model, VAD, device with the backend the engine chose, and where to go: one line each."""
    log = app_server.log()
    model = model_env["SENSEVOICE_MODEL"]
    lines = [
        f"model: {model} (local directory)",
        "VAD: silero-vad",
        "device: cpu (--device cpu), backend: onnx fp32",
        f"web UI: {app_server.url}/   API docs: {app_server.url}/docs",
    ]
    for line in lines:
        assert log.count(line) == 1, (line, log[-3000:])
