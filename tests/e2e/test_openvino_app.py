"""The real app on OpenVINO: `--backend openvino` started as a user starts it serves the
reference transcript (fp32: OpenVINO's logits are onnxruntime's to about 3e-5) and says
which runtime it runs on /ready."""

from __future__ import annotations

from pathlib import Path

import httpx

from sensevoice_server.audio import AudioLimits, decode
from sensevoice_server.testing.reference import reference_text
from sensevoice_server.testing.servers import run_app
from sensevoice_server.transcript import TAG
from tests.support.samples import SAMPLES


def test_the_app_serves_on_openvino(
    model_env: dict[str, str], tiny_onnx: Path, reference_model, tmp_path: Path
) -> None:
    env = {**model_env, "SENSEVOICE_BACKEND": "openvino", "SENSEVOICE_PRECISION": "fp32",
           "SENSEVOICE_ONNX_DIR": str(tiny_onnx), "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip
    path = SAMPLES / "en.wav"
    with run_app(env, tmp_path) as app:
        ready = httpx.get(f"{app.url}/ready").json()
        assert (ready["backend"], ready["precision"]) == ("openvino", "fp32")
        with path.open("rb") as handle:
            answer = httpx.post(f"{app.url}/api/transcribe", files={"file": handle},
                                data={"use_itn": "true"}, timeout=60)  # fmt: skip
        assert "OpenVINO fp32: model.onnx computed in f32" in app.log()
    assert answer.status_code == 200, answer.text
    samples = decode(path.read_bytes(), AudioLimits(10**8, 3600))
    expected = reference_text(reference_model, samples, "auto", True)
    assert answer.json()["plain_text"] == " ".join(TAG.sub(" ", expected).split())
