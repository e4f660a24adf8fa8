"""An FSMN VAD (fsmn-vad, the default) without torch: its network exported to ONNX once and
kept, its frontend and its defaults equal to funasr's, and a server that uses it imports
neither torch nor funasr. (The segments themselves are held to funasr's in test_vad.py.)
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.features import Cmvn
from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.engine.fsmn_config import SILENCE_SCHEDULE, FsmnConfig, VadOptions
from sensevoice_server.engine.fsmn_export import exported
from sensevoice_server.engine.fsmn_features import WAV_FRONTEND_ONLINE, FsmnFrontend
from sensevoice_server.engine.fsmn_segments import FsmnSegments
from sensevoice_server.engine.segmenter import runs_in_torch
from sensevoice_server.settings import Settings
from sensevoice_server.user_dirs import cache_dir
from tests.support.fsmn_vad import build_fsmn_vad
from tests.support.inprocess import changed
from tests.support.samples import ROOT, load


@pytest.fixture(scope="module")
def fsmn_vad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fsmn_vad(tmp_path_factory.mktemp("fsmn") / "fsmn-vad")


def speech_and_silence() -> np.ndarray:
    clip = load("en.wav")
    return np.concatenate([clip, np.zeros(16_000, np.float32), clip])


def test_the_export_is_made_once_and_kept_by_the_vad_directorys_content(fsmn_vad: Path) -> None:
    """Like the model's export: made at first use in a process with torch, under the user
    cache dir, named by the directory's content hash; the next start finds it there."""
    FsmnSegments(fsmn_vad, max_single_segment_ms=30_000)
    kept = cache_dir() / "fsmn-vad" / identify(str(fsmn_vad))[:16] / "model.onnx"
    assert kept.is_file()
    stamp = kept.stat().st_mtime_ns
    assert exported(fsmn_vad) == kept
    assert kept.stat().st_mtime_ns == stamp  # not exported twice
    assert not kept.parent.with_name(kept.parent.name + ".partial").exists()


def test_the_frontend_gives_funasrs_features_and_samples_chunk_by_chunk(fsmn_vad: Path) -> None:
    """WavFrontendOnline (what funasr feeds the FSMN VAD) bit for bit, however the audio is
    cut: chunks of many frames, chunks too short to complete the LFR context (held back),
    a chunk shorter than a frame, and a last one of any length."""
    import torch
    from funasr.frontends.wav_frontend import WavFrontendOnline
    from funasr.utils.load_utils import extract_fbank

    config = FsmnConfig.read(fsmn_vad)
    assert config.cmvn_file is not None
    funasr_frontend = WavFrontendOnline(cmvn_file=str(config.cmvn_file), **config.frontend)
    ours = FsmnFrontend(config.frontend, Cmvn.from_am_mvn(config.cmvn_file))
    audio = speech_and_silence()
    cuts = np.cumsum([16_000, 800, 300, 100, 20_000 + 37, 161, 16_000])
    cache: dict[str, Any] = {}
    for index, chunk in enumerate(np.split(audio, cuts)):
        final = index == len(cuts)
        expected, _ = extract_fbank([torch.from_numpy(chunk)], frontend=funasr_frontend,
                                    cache=cache, is_final=final, return_waveform=True)  # fmt: skip
        features, samples = ours.chunk(chunk, final)
        assert np.array_equal(features, expected.numpy().reshape(-1, 400)), index
        if features.size:
            assert np.array_equal(samples, cache["aligned_waveforms"].numpy()[0]), index


def test_the_onnx_network_gives_funasrs_scores_with_its_memory_carried(fsmn_vad: Path) -> None:
    """The export computes what funasr's streaming encoder computes, the layers' memories
    carried from one chunk to the next as funasr's `cache["encoder"]` carries them."""
    import torch
    from funasr import AutoModel

    torch_model = AutoModel(model=str(fsmn_vad), device="cpu", disable_update=True,
                            disable_pbar=True, disable_log=True).model  # fmt: skip
    segments = FsmnSegments(fsmn_vad, max_single_segment_ms=30_000)
    features = np.random.default_rng(0).normal(0, 1, (2, 300, 400)).astype(np.float32)
    cache: dict[str, Any] = {}
    memories = [np.zeros(m.shape, np.float32) for m in segments._memories]
    for chunk in features:
        with torch.no_grad():
            expected = torch_model.encoder(torch.from_numpy(chunk)[None], cache=cache)
        scores, memories = segments._scores(chunk, memories)
        assert np.allclose(scores, expected[0, :, 0].numpy(), atol=1e-6)


def test_the_defaults_are_funasrs() -> None:
    """Settings a VAD directory leaves out take funasr's defaults, which live in torch
    modules and are copied here: they must not drift apart."""
    from funasr.frontends.wav_frontend import WavFrontendOnline
    from funasr.models.fsmn_vad_streaming.model import DEFAULT_SILENCE_SCHEDULE, VADXOptions

    funasr_options = vars(VADXOptions())
    for name, value in vars(VadOptions()).items():
        assert funasr_options[name] == (list(value) if isinstance(value, tuple) else value), name
    assert list(SILENCE_SCHEDULE) == DEFAULT_SILENCE_SCHEDULE
    signature = inspect.signature(WavFrontendOnline.__init__).parameters
    assert all(signature[name].default == value for name, value in WAV_FRONTEND_ONLINE.items())


def test_the_server_overrides_max_single_segment_time_as_funasr_merges_it(
    fsmn_vad: Path,
) -> None:
    config = FsmnConfig.read(fsmn_vad, max_single_segment_time=2_000)
    assert config.options.max_single_segment_time == 2_000
    assert config.options.decibel_thres == -30.0  # the directory's own model_conf
    assert config.dynamic_silence  # funasr's default when max_end_silence_time is not given


SERVER_ALONE = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from sensevoice_server.settings import Settings
from tests.support.inprocess import running_app

async def main():
    async with running_app(Settings(**json.loads(sys.argv[1]))) as app:
        files = {"file": ("clip.wav", Path(sys.argv[2]).read_bytes())}
        answer = await app.client.post("/api/transcribe", files=files)
        assert answer.status_code == 200, answer.text
        return answer.json()["plain_text"]

text = asyncio.run(main())
loaded = sorted(name for name in ("torch", "funasr") if name in sys.modules)
print(json.dumps({"text": text, "loaded": loaded}))
"""


def test_an_fsmn_server_on_onnx_imports_neither_torch_nor_funasr(
    settings: Settings, fsmn_vad: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    """The reason for all this: the default CPU server (an FSMN VAD, the onnx backend, no
    speaker labels) need not load torch and funasr (about 540 MB resident). A fresh process
    runs the whole app and transcribes a clip."""
    given = {"model": settings.model, "vad_model": str(fsmn_vad), "device": "cpu", "ncpu": 1,
             "cache_url": "none", "backend": "onnx", "onnx_dir": str(tiny_onnx),
             "precision": "fp32"}  # fmt: skip
    fsmn_settings = changed(settings, **given)
    engine_settings = EngineSettings.of(fsmn_settings)
    assert not runs_in_torch(engine_settings)
    assert runs_in_torch(replace(engine_settings, speakers=True))  # CAM++ runs in torch
    audio = tmp_path / "clip.wav"
    audio.write_bytes((ROOT / "samples" / "en.wav").read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", SERVER_ALONE, json.dumps(given), str(audio)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["text"]
    assert answer["loaded"] == []
