"""Every setting of the service, in one typed class.

Each field is a `SENSEVOICE_<NAME>` environment variable and a `--kebab-case` flag of
`app_sensevoice.py`; both map onto the same field, so there is one place to read, one
place to document and one place where a wrong value fails at start-up with a hint.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Language = Literal["auto", "zh", "en", "yue", "ja", "ko", "nospeech"]
LANGUAGES: tuple[str, ...] = ("auto", "zh", "en", "yue", "ja", "ko", "nospeech")


def cores_given_to_process() -> int:
    """Cores this process may run on (cgroup/affinity aware), not the machine's total."""
    return len(os.sched_getaffinity(0))


class Settings(BaseSettings):
    """Settings of one service process. Defaults suit one user on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="SENSEVOICE_",
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    # --- server -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Address to listen on. Use 0.0.0.0 to serve other machines."""
    port: int = Field(7860, ge=0, le=65535)
    """TCP port to listen on."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the service's own loggers."""

    # --- model --------------------------------------------------------------------------
    model: str = "iic/SenseVoiceSmall"
    """Hub id (downloaded on first start) or a local SenseVoiceSmall directory."""
    vad_model: str = "fsmn-vad"
    """VAD model: fsmn-vad (hub), silero-vad (shipped in its wheel) or a local directory."""
    device: str = "auto"
    """auto (cuda:0 when available, else cpu), cpu, or cuda:N."""
    ncpu: int = Field(default_factory=cores_given_to_process, ge=1)
    """CPU threads for inference; defaults to the cores given to this process."""
    max_single_segment_ms: int = Field(30000, ge=1000)
    """Longest VAD segment in milliseconds (vad_kwargs.max_single_segment_time)."""
    merge_length_s: int = Field(15, ge=1)
    """Target length for merging short VAD segments (AutoModel merge_length_s)."""
    batch_size_s: int = Field(60, ge=1)
    """Seconds of audio per inference batch (generate batch_size_s)."""
    served_model_name: str = "sensevoice-small"
    """The model's name in answers and in /v1/models."""
    model_aliases: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["whisper-1"])
    """Other names /v1 accepts for the same model (comma-separated), so OpenAI scripts run
    unchanged; any other name is refused with OpenAI's model_not_found error."""

    # --- limits -------------------------------------------------------------------------
    max_upload_mb: float = Field(100.0, gt=0)
    """Largest accepted upload, in megabytes (10^6 bytes)."""
    max_duration_s: float = Field(3600.0, gt=0)
    """Longest accepted audio, in seconds after decoding."""
    queue_size: int = Field(16, ge=1)
    """Jobs that may wait for the model; more get a 'busy' answer (HTTP 429)."""
    ui_concurrency: int = Field(4, ge=1)
    """Gradio events processed at once (they then wait in the engine queue)."""
    ui_queue_size: int = Field(64, ge=1)
    """Gradio events that may wait in Gradio's own queue."""
    max_batch_files: int = Field(32, ge=1)
    """Files accepted in one /api/batch request."""

    # --- access -------------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """API keys (JSON list or comma-separated); when set, /api and /v1 need a Bearer key."""
    ui_auth: str | None = None
    """Protect the web UI with 'user:password' (Gradio auth); off when unset."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu") or value.startswith("cuda"):
            return value
        raise ValueError("device must be auto, cpu or cuda:N")

    @field_validator("api_keys", "model_aliases", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    def resolved_device(self) -> str:
        """The device `auto` stands for on this machine."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
