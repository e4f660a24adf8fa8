"""Every setting of the service, in one typed class, read and validated once at start-up.

Each field is a `SENSEVOICE_<NAME>` environment variable and a `--kebab-case` flag of
`sensevoice-server` (`python app_sensevoice.py`); both map onto the same field, so there is
one place to read, one place to document (the README's table is generated from the field
docstrings) and one place where a wrong value stops start-up with a one-line hint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sensevoice_server.errors import StartupError
from sensevoice_server.redaction import redact

ENV_PREFIX = "SENSEVOICE_"
# Variables of ours that are not server settings (the CLI client's and the benchmarks').
OTHER_VARIABLES = frozenset({"SENSEVOICE_URL", "SENSEVOICE_API_KEY", "SENSEVOICE_BENCH_MODEL"})


def cores_given_to_process() -> int:
    """Cores this process may run on (cgroup/affinity aware), not the machine's total."""
    return len(os.sched_getaffinity(0))


class Settings(BaseSettings):
    """Settings of one service process. Defaults suit one user on one machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    """Log level of the service's own loggers (debug also shows tracebacks of start-up errors)."""
    log_format: Literal["text", "json"] = "text"
    """text (one readable line per event) or json (one JSON object per line, for log shippers)."""

    # --- model --------------------------------------------------------------------------
    model: str = "iic/SenseVoiceSmall"
    """Hub id (downloaded on first start) or a local SenseVoiceSmall directory."""
    vad_model: str = "fsmn-vad"
    """VAD model: fsmn-vad (hub; its network is exported to ONNX at first start and run on
    onnxruntime, with funasr's segments), silero-vad (shipped in its wheel) or a local
    directory."""
    device: str = "auto"
    """auto (cuda:0 when available, else cpu), cpu, or cuda:N."""
    ncpu: int = Field(default_factory=cores_given_to_process, ge=1)
    """CPU threads for inference; defaults to the cores given to this process."""
    model_threads: int = Field(0, ge=0, le=64)
    """Model calls run at once on a CPU, sharing --ncpu (onnx backend: its sessions take
    concurrent calls; torch runs one). 0: auto, as many as --ncpu up to 2 (measured: README)."""
    backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    """auto (torch on CUDA; on a CPU onnx int8, or OpenVINO where it was measured faster on
    this machine at first start, recorded in the cache), torch (funasr's own modules), onnx
    (onnxruntime on an ONNX export of --model, made at first start) or openvino (the same
    export under OpenVINO: the `openvino` extra)."""
    precision: Literal["auto", "fp32", "fp16", "int8", "bf16"] = "auto"
    """auto (fp16 with torch on CUDA, int8 on a CPU), fp32, fp16 (torch on CUDA), int8 (onnx,
    openvino) or bf16 (openvino, on a CPU with AMX or AVX512_BF16: close to fp32 without
    calibration)."""
    onnx_dir: str | None = None
    """An ONNX export to run (from `python -m sensevoice_server.cli export`, or sherpa-onnx's
    SenseVoice download); default: exported from --model once, kept under
    ~/.cache/sensevoice/onnx."""
    calibration_audio: str | None = None
    """A directory of audio like yours: int8's activation scales are fixed from it when the
    export is made, and int8 is checked against fp32 on it once per export (fp32 is served
    when they disagree). Default: twelve synthetic clips shipped in the package."""
    batch_max_items: int = Field(0, ge=0)
    """Segments decoded together in one model call; 0: 1 on CPU (batching buys nothing
    there), 16 on CUDA."""
    batch_wait_ms: float = Field(10.0, ge=0)
    """With room left in a batch, how long it waits for more segments (when it can hold
    more than one)."""
    keyword_boost: float = Field(3.0, ge=0, le=20)
    """With keywords in a request: the log-probability each token of a keyword earns in the
    beam search (higher finds more, and risks inserting a keyword that was not said;
    bench/bench_keywords.py measures both). 0 turns biasing off."""
    speakers: bool = False
    """Label each segment with its speaker (CAM++ embeddings, clustered): about 1.7 CPU
    seconds per minute of audio (bench/bench_extras.py). Needed for diarized_json."""
    speaker_model: str = "cam++"
    """The speaker-embedding model: cam++ (hub, downloaded at first start) or a local
    CAM++ directory."""
    max_single_segment_ms: int = Field(30000, ge=1000)
    """Longest VAD segment in milliseconds (vad_kwargs.max_single_segment_time)."""
    merge_length_s: int = Field(15, ge=1)
    """Target length for merging short VAD segments (AutoModel merge_length_s)."""
    batch_size_s: int = Field(60, ge=1)
    """Most seconds of (padded) audio in one model call."""
    served_model_name: str = Field("sensevoice-small", min_length=1)
    """The model's name in answers and in /v1/models."""
    model_aliases: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["whisper-1"])
    """Other names /v1 accepts for the same model (comma-separated or a JSON list), so OpenAI
    scripts run unchanged; any other name is refused with OpenAI's model_not_found error."""

    # --- limits -------------------------------------------------------------------------
    max_upload_mb: float = Field(100.0, gt=0)
    """Largest accepted upload, in megabytes (10^6 bytes)."""
    max_duration_s: float = Field(3600.0, gt=0)
    """Longest accepted audio, in seconds after decoding."""
    queue_size: int = Field(16, ge=1)
    """Jobs that may wait for the model; more get a 'busy' answer (HTTP 429)."""
    queue_max_audio_s: float = Field(7200.0, gt=0)
    """Seconds of audio that may be decoded and waiting for the model at once (about 230 MB
    of memory per hour); more get a 'busy' answer (HTTP 429) before they are decoded."""
    max_inflight_upload_mb: float = Field(1000.0, gt=0)
    """Megabytes of transcription uploads (/api, /v1) held at once, from their first byte to
    their answer: each request's Content-Length, or its bytes counted as they arrive. More
    get a 'busy' answer (HTTP 429) before their body is read. Bodies are spooled to disk
    past 1 MB and hashed and decoded from there, so this bounds the temporary files (RAM
    where /tmp is a tmpfs); one upload alone is always let in."""
    decode_concurrency: int = Field(default_factory=cores_given_to_process, ge=1)
    """Uploads decoded (PyAV) at the same time; the others wait their turn."""
    ui_concurrency: int = Field(4, ge=1)
    """Gradio events processed at once (they then wait in the engine queue)."""
    ui_queue_size: int = Field(64, ge=1)
    """Gradio events that may wait in Gradio's own queue."""
    ui_upload_max_mb: float = Field(2000.0, gt=0)
    """Megabytes Gradio's upload folder may hold (GRADIO_TEMP_DIR, else /tmp/gradio): the
    web UI's and gradio_client's uploads, uploads in flight and the files the UI offers for
    download. An upload beyond it gets a 'busy' answer (HTTP 429) before its body is read;
    one upload alone is always let in."""
    ui_upload_ttl_s: float = Field(3600.0, ge=1)
    """Seconds an upload to the web UI (or gradio_client) is kept after it was last used, and
    a file the UI offers for download after it was made (Gradio's delete_cache). Live tab
    chunks and the Several files tab's files go as soon as they are read."""
    max_batch_files: int = Field(32, ge=1)
    """Files accepted in one /api/batch request."""
    max_batch_mb: float = Field(200.0, gt=0)
    """Largest accepted /api/batch request body, in megabytes (all its files together)."""
    drain_timeout_s: float = Field(120.0, ge=0)
    """On SIGTERM, how long to finish running and queued work before exiting."""

    # --- live streaming -----------------------------------------------------------------
    live_max_sessions: int = Field(8, ge=0)
    """Live streams (WebSocket and the UI's Live tab) one process holds at once; more are
    refused (close code 1013). 0 turns live streaming off."""
    live_idle_timeout_s: float = Field(30.0, gt=0)
    """A live stream whose client sends nothing for this long (or too little audio: see
    live_min_speed) is closed as idle, what was heard decoded first; time spent waiting for
    the model does not count. A new connection has this long, at most 10 s, to send its config."""
    live_min_speed: float = Field(0.5, ge=0, le=1)
    """Least audio a live stream must keep sending, as a share of real time: each second of
    audio buys 1/live_min_speed seconds of quiet, up to live_idle_timeout_s, so a trickle of a
    few bytes cannot hold a place. 0: any audio frame restarts the idle timer."""
    live_max_speed: float = Field(4.0, ge=1)
    """Fastest a live stream may send audio, as a multiple of real time, once it is 60 s of
    audio ahead of that pace (a short file sent at once fits); each frame counts as at least
    5 ms, so a flood of tiny frames is too fast too. Beyond it the stream gets the finals of
    what it sent, then is closed (1008, too_fast)."""
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
    redis://host:6379/0 (shared by several processes or machines), or none (off)."""
    cache_ttl_s: float = Field(7 * 24 * 3600, ge=0)
    """How long a cached transcript is kept, in seconds (0: forever)."""
    cache_max_mb: float = Field(512.0, gt=0)
    """Size cap of the SQLite cache in megabytes; least recently used entries go first.
    (Redis is bounded by its own maxmemory policy.)"""

    # --- access -------------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """API keys (JSON list or comma-separated); when set, nothing transcribes without one:
    /api, /v1 and the WebSocket need a Bearer key, the web UI a login with a key."""
    ui_auth: SecretStr | None = None
    """Protect the web UI with 'user:password' (also accepted when API keys are set)."""
    ui_public: bool = False
    """With API keys set, leave the web UI and the Gradio API it uses open to anyone."""
    ui_session_hours: float = Field(7 * 24.0, gt=0)
    """How long a web UI login lasts. This process holds the logins: logging out ends one at
    once, and a restart ends them all."""
    auth_free_failures: int = Field(5, ge=1)
    """Failed logins or API keys one client address may make before it must wait (HTTP 429
    with Retry-After): 1 s, doubling with each further failure up to auth_max_wait_s; a login
    or 15 quiet minutes start it afresh. The address is the connection's, or X-Forwarded-For's
    from a proxy on 127.0.0.1 (uvicorn's FORWARDED_ALLOW_IPS names others)."""
    auth_max_wait_s: float = Field(60.0, ge=1)
    """The longest wait a client address is given after failed logins or API keys."""
    auth_failures_per_minute: int = Field(30, ge=1)
    """Failed logins and API keys from all addresses together per minute; beyond it every
    address that failed lately waits (HTTP 429) until the count falls, while an address
    without failures is still heard."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu") or (value.startswith("cuda") and value[4:5] in ("", ":")):
            return value
        raise ValueError("must be auto, cpu or cuda:N")

    @model_validator(mode="after")
    def _backend_takes_precision(self) -> Settings:
        if self.precision == "fp16" and self.backend == "onnx":
            raise ValueError("--precision fp16 runs on the torch backend (on CUDA) only")
        if self.precision == "int8" and self.backend == "torch":
            raise ValueError("--precision int8 runs on the onnx and openvino backends only")
        if self.precision == "fp16" and self.backend == "openvino":
            raise ValueError("--precision fp16 runs on the torch backend (on CUDA) only")
        if self.precision == "bf16" and self.backend in ("torch", "onnx"):
            raise ValueError("--precision bf16 runs on the openvino backend only")
        return self

    @field_validator("ui_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        _, colon, password = value.get_secret_value().partition(":") if value else ("", "", "")
        if value is not None and not (colon and password):
            raise ValueError("must be user:password")
        return value

    @field_validator("api_keys", "model_aliases", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """A JSON list (["a", "b"]) or comma-separated values (a,b)."""
        if not isinstance(value, str):
            return value
        if not value.lstrip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        try:
            items = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"not a valid JSON list ({error.msg} at character {error.pos}); write "
                '["a", "b"] or a,b'
            ) from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError('must be a JSON list of strings, such as ["a", "b"], or a,b')
        return [item.strip() for item in items if item.strip()]

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_batch_bytes(self) -> int:
        return int(self.max_batch_mb * 1_000_000)

    def resolved_device(self) -> str:
        """The device `auto` stands for on this machine."""
        if self.device != "auto":
            return self.device
        from sensevoice_server.gpu import cuda_usable

        return "cuda:0" if cuda_usable() else "cpu"


# --- the command line -----------------------------------------------------------------------
PRECEDENCE = """\
Every flag is also an environment variable (shown with each flag). A flag given on the
command line wins over its variable, which wins over the default. Lists (--api-keys,
--model-aliases) are comma-separated or a JSON list (["a", "b"]). See the README's Settings
table for more.
"""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def variable(name: str) -> str:
    return ENV_PREFIX + name.upper()


def default_text(name: str) -> str:
    field = Settings.model_fields[name]
    if name in ("ncpu", "decode_concurrency"):
        return "the cores given to this process"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return ",".join(map(str, value)) if value else "none"
    return "none" if field.default is None else str(field.default)


def argument_parser(prog: str) -> argparse.ArgumentParser:
    """One flag per setting, its help the field's docstring, its default and its variable."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="SenseVoiceSmall speech recognition: web UI, HTTP API, OpenAI-compatible "
        "route and live streaming, served from one process.",
        epilog=PRECEDENCE,
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, field in Settings.model_fields.items():
        doc = " ".join((field.description or "").split())
        help_text = f"{doc} [default: {default_text(name)}; env {variable(name)}]"
        if field.annotation is bool:
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag(name), metavar=name.split("_")[-1].upper(), help=help_text)
    return parser


def load_settings(argv: Sequence[str] | None = None, prog: str = "sensevoice-server") -> Settings:
    """Flags over SENSEVOICE_* variables over defaults; a bad value is a StartupError naming
    the flag (or variable) and what is allowed, without pydantic's dump."""
    given: dict[str, Any] = vars(argument_parser(prog).parse_args(argv))
    try:
        return Settings(**given)
    except ValidationError as error:
        raise StartupError(describe(error, given)) from None


def describe(error: ValidationError, given: dict[str, Any]) -> str:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule between settings: its message names them
            problems.append(message)
            continue
        name = str(item["loc"][0])
        where = flag(name) if name in given else variable(name)
        problems.append(f"{where}: {message} {echo(name, item.get('input'))}")
    return "; ".join(problems)


def echo(name: str, value: object) -> str:
    """The value given, for a start-up error: never a secret setting's, and never a password
    or key in a URL form (a cache URL may carry one)."""
    if name in SECRET_SETTINGS:
        return "(the value is a secret: not shown)"
    return f"(got {redact(repr(value))})"


def holds_secret(annotation: object) -> bool:
    return annotation is SecretStr or any(holds_secret(arg) for arg in get_args(annotation))


SECRET_SETTINGS = frozenset(
    name for name, field in Settings.model_fields.items() if holds_secret(field.annotation)
)


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """SENSEVOICE_* variables that are no setting: most likely typos, worth a warning."""
    environ = dict(os.environ) if environ is None else environ
    known = {variable(name) for name in Settings.model_fields} | OTHER_VARIABLES
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)


if __name__ == "__main__":  # pragma: no cover - `python -m sensevoice_server.settings --help`
    load_settings(sys.argv[1:])
