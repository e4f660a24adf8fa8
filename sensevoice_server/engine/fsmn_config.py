"""An FSMN VAD directory's settings, read as funasr reads them, without funasr.

funasr's AutoModel reads the directory's configuration.json (whose `file_path_metas` name
config.yaml and am.mvn) or, without one, config.yaml and an am.mvn beside it
(funasr/download/download_model_from_hub.py), then merges what the caller passes on top:
`model_conf` plus the top-level options become the model's `VADXOptions`
(funasr/models/fsmn_vad_streaming/model.py), and the top-level ones also reach its
`inference` as keyword arguments (`chunk_size`, `max_end_silence_time`, `dynamic_silence`,
...). This does the same for the onnxruntime path, so `--max-single-segment-ms` lands where
it lands in funasr.

Gap filled: funasr's readers live in torch modules. tests/unit/test_fsmn_onnx.py holds
the defaults below to funasr's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sensevoice_server.errors import ModelLoadError

MODEL_CLASS = "FsmnVADStreaming"  # what funasr's registry builds for an FSMN VAD
CHUNK_MS = 60_000  # funasr's default `chunk_size` for an offline call
# funasr's DEFAULT_SILENCE_SCHEDULE (model.py): (speech so far in ms, end silence in ms).
# A constant in a torch module: copied, and held to funasr's by a test.
SILENCE_SCHEDULE = ((10000, 2000), (20000, 1000), (30000, 800), (40000, 600), (50000, 400),
                    (60000, 200), (float("inf"), 100))  # fmt: skip
SCHEDULED_SPEECH_NOISE_THRES = 0.5  # what funasr's dynamic schedule sets with each step


@dataclass(frozen=True)
class VadOptions:
    """funasr's VADXOptions: its fields and defaults (the ones this VAD reads)."""

    sample_rate: int = 16000
    detect_mode: int = 1  # 1: many utterances (reset after each end), 0: one
    max_end_silence_time: float = 800
    max_start_silence_time: float = 3000
    window_size_ms: int = 200
    sil_to_speech_time_thres: int = 150
    speech_to_sil_time_thres: int = 150
    speech_2_noise_ratio: float = 1.0
    do_extend: int = 1
    lookback_time_start_point: int = 200
    lookahead_time_end_point: int = 100
    max_single_segment_time: float = 60000
    snr_thres: float = -100.0
    noise_frame_num_used_for_snr: int = 100
    decibel_thres: float = -100.0
    speech_noise_thres: float = 0.6
    fe_prior_thres: float = 1e-4
    silence_pdf_num: int = 1
    sil_pdf_ids: tuple[int, ...] = (0,)
    frame_in_ms: int = 10
    frame_length_ms: int = 25

    @classmethod
    def of(cls, merged: dict[str, Any]) -> VadOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in merged.items() if k in known}
        if "sil_pdf_ids" in values:
            values["sil_pdf_ids"] = tuple(values["sil_pdf_ids"])
        return cls(**values)


@dataclass(frozen=True)
class FsmnConfig:
    """What the onnxruntime path needs of an FSMN VAD directory, overrides applied."""

    directory: Path
    options: VadOptions
    frontend: dict[str, Any]  # frontend_conf: fbank and LFR
    cmvn_file: Path | None  # WavFrontendOnline applies no CMVN without one
    chunk_ms: int = CHUNK_MS
    dynamic_silence: bool = True
    silence_schedule: tuple[tuple[float, float], ...] = SILENCE_SCHEDULE
    speech_noise_thres: float | None = None  # a top-level override of the options' value
    encoder: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: str | Path, **overrides: Any) -> FsmnConfig:
        """The directory's config with `overrides` on top, as AutoModel(model=directory,
        **overrides) merges them."""
        directory = Path(directory)
        config, cmvn = _config_and_cmvn(directory)
        if config.get("model") != MODEL_CLASS:
            raise ModelLoadError(
                f"{directory}: not an FSMN VAD (its model is {config.get('model')})"
            )
        merged = {**config, **overrides}
        options = VadOptions.of({**(config.get("model_conf") or {}), **merged})
        frontend = dict(config.get("frontend_conf") or {})
        chunk_ms = int(merged.get("chunk_size", CHUNK_MS))
        if chunk_ms < 15_000:  # below it funasr switches to its streaming output
            raise ModelLoadError(f"{directory}: chunk_size {chunk_ms} ms is not supported")
        end_silence = merged.get("max_end_silence_time")
        if end_silence is not None:  # funasr's init_cache sets it on the options
            options = VadOptions.of({**options.__dict__, "max_end_silence_time": end_silence})
        schedule = merged.get("silence_schedule", SILENCE_SCHEDULE)
        return cls(
            directory=directory,
            options=options,
            frontend=frontend,
            cmvn_file=cmvn,
            chunk_ms=chunk_ms,
            dynamic_silence=bool(merged.get("dynamic_silence", end_silence is None)),
            silence_schedule=tuple((float(a), float(b)) for a, b in schedule),
            speech_noise_thres=merged.get("speech_noise_thres"),
            encoder=dict(config.get("encoder_conf") or {}),
        )


def is_fsmn_vad(directory: str | Path) -> bool:
    """Whether funasr would load `directory` as an FSMN VAD."""
    try:
        config, _ = _config_and_cmvn(Path(directory))
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return config.get("model") == MODEL_CLASS


def _config_and_cmvn(directory: Path) -> tuple[dict[str, Any], Path | None]:
    """config.yaml's content and the CMVN file, found where funasr finds them."""
    described = directory / "configuration.json"
    if described.is_file():
        metas = json.loads(described.read_text(encoding="utf-8")).get("file_path_metas", {})
        config_path = _existing(directory, metas.get("config")) or directory / "config.yaml"
        config = _yaml(config_path)
        named = _existing(directory, (metas.get("frontend_conf") or {}).get("cmvn_file"))
        given = (config.get("frontend_conf") or {}).get("cmvn_file")
        return config, named or (Path(given) if given else None)
    config = _yaml(directory / "config.yaml")
    return config, directory / "am.mvn" if (directory / "am.mvn").is_file() else None


def _existing(directory: Path, name: object) -> Path | None:
    path = directory / name if isinstance(name, str) else None
    return path if path is not None and path.exists() else None


def _yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a mapping")
    return loaded
