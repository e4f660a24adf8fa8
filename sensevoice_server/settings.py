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
    drain_timeout_s: float = Field(120.0, ge=0)
    """On SIGTERM, how long to finish running and queued work before exiting."""

    # --- live streaming -----------------------------------------------------------------
    live_max_sessions: int = Field(8, ge=0)
    """Live streams (WebSocket and the UI's Live tab) one process holds at once; more are
    refused (close code 1013). 0 turns live streaming off."""
    live_idle_timeout_s: float = Field(30.0, gt=0)
    """A live stream whose client sends nothing for this long is closed; time spent waiting
    for the model does not count."""
    live_max_session_s: float = Field(4 * 3600.0, gt=0)
    """Longest a live stream may last."""
    live_vad_threshold: float = Field(0.5, gt=0.15, lt=1.0)
    """silero VAD speech probability that opens an utterance (it ends below this - 0.15)."""
    live_end_silence_ms: int = Field(500, ge=100)
    """Silence that ends an utterance and triggers its final result."""
    live_max_utterance_s: float = Field(15.0, ge=2.0)
    """An utterance still going after this long is cut, and the cut part gets a final."""
    live_partial_interval_s: float = Field(0.8, ge=0.2)
    """Least time (and new audio) between two partial results of one stream."""
    live_resume_ttl_s: float = Field(300.0, ge=0)
    """How long an ended stream's session_id keeps its segment numbering for a reconnect."""

    # --- result cache ---------------------------------------------------------------
    cache_url: str = "sqlite"
    """sqlite (a file under ~/.cache/sensevoice), sqlite:///abs/path.sqlite3,
    redis://host:6379/0 (shared by several processes or machines), or none."""
    cache_ttl_s: float = Field(7 * 24 * 3600, ge=0)
    """How long a cached transcript is kept, in seconds (0: forever)."""
    cache_max_mb: float = Field(512.0, gt=0)
    """Size cap of the SQLite cache in megabytes; least recently used entries go first.
    (Redis is bounded by its own maxmemory policy.)"""

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
