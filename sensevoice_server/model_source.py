"""Where each model comes from, found out in seconds, before the server listens.

A value that looks like a path is a path: it must be a directory holding what funasr reads
(a missing one fails at once, naming it). Anything else is a hub id: a complete copy already
in ModelScope's cache is used from there (no network at all), else the hub must answer
within a few seconds, or start-up stops with one paragraph saying what failed and the three
ways out (local copies, the hub, or the test checkpoint to try the service). Without this,
funasr spends 20-45 s in DNS timeouts after "running on" was printed, then reports the hub
as "model ... is not registered" (docs/FACTS.md, "Loading models without a hub").
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sensevoice_server.errors import StartupError
from sensevoice_server.settings import Settings, flag, variable
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)

# funasr's own aliases for the hub ids (funasr/download/name_maps_from_hub.py, name_maps_ms);
# tests/unit/test_model_source.py checks they still agree.
HUB_ALIASES = {
    "fsmn-vad": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    "cam++": "iic/speech_campplus_sv_zh-cn_16k-common",
}
BUILT_IN = {"silero-vad": "shipped in the silero-vad wheel"}
REQUIRED_FILES = ("config.yaml", "model.pt")  # what funasr's AutoModel reads from a directory
HUB_TIMEOUT_S = 5.0
TRY_DIR = "/tmp/sensevoice-tiny"  # where the README builds the test checkpoint too


@dataclass(frozen=True)
class ModelSource:
    setting: str  # the Settings field
    value: str  # as the user gave it
    load_from: str  # what to hand funasr: a local directory, a hub id or a built-in name
    where: str  # for the start-up summary: "local directory", "hub cache", ...

    def describe(self) -> str:
        if self.load_from == self.value:
            return f"{self.value} ({self.where})"
        return f"{self.value} ({self.where}: {self.load_from})"


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or Path(value).expanduser().exists()


def locate(setting: str, value: str) -> ModelSource:
    """A path that must be a model directory, a built-in name, or a hub id (maybe cached)."""
    if looks_like_path(value):
        return ModelSource(setting, value, str(check_directory(setting, value)), "local directory")
    if value in BUILT_IN:
        return ModelSource(setting, value, value, BUILT_IN[value])
    cached = cached_copy(HUB_ALIASES.get(value, value))
    if cached is not None:
        return ModelSource(setting, value, cached, "hub cache")
    return ModelSource(setting, value, value, "model hub, downloaded at first start")


def check_directory(setting: str, value: str) -> Path:
    path = Path(value).expanduser()
    where = f"{flag(setting)} {value} ({variable(setting)})"
    if not path.exists():
        raise StartupError(f"{where}: no such directory.")
    if not path.is_dir():
        raise StartupError(f"{where}: not a directory; give the model's directory.")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise StartupError(
            f"{where}: the directory has no {' or '.join(missing)}; a funasr model directory "
            f"holds {', '.join(REQUIRED_FILES)} and the files its config names."
        )
    return path.resolve()


def cached_copy(hub_id: str) -> str | None:
    """ModelScope's local copy of `hub_id`, asked of modelscope itself without any network,
    the first time; its answer is remembered, because importing modelscope imports torch
    (about 540 MB that a server on onnxruntime never uses again)."""
    remembered = HubCopies()
    if (known := remembered.get(hub_id)) and complete(Path(known)):
        return known
    from modelscope.hub.snapshot_download import snapshot_download

    try:
        path = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # modelscope raises several kinds for "not cached"
        return None
    if not complete(path):
        return None
    remembered.put(hub_id, str(path))
    return str(path)


def complete(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED_FILES)


class HubCopies:
    """Hub ids and the directories of their local copies, in a small JSON file; never raises
    on I/O (a copy not remembered is asked of modelscope again)."""

    def __init__(self) -> None:
        self.path = cache_dir() / "hub-copies.json"
        try:
            self._known: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._known = {}

    def get(self, hub_id: str) -> str | None:
        return self._known.get(self.key(hub_id))

    def put(self, hub_id: str, directory: str) -> None:
        self._known[self.key(hub_id)] = directory
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            aside = self.path.with_suffix(f".{os.getpid()}.tmp")
            aside.write_text(json.dumps(self._known, indent=1))
            aside.replace(self.path)
        except OSError as error:
            log.debug("could not remember where %s is: %s", hub_id, error)

    @staticmethod
    def key(hub_id: str) -> str:
        """Per ModelScope cache: MODELSCOPE_CACHE pointed elsewhere looks there afresh."""
        return f"{os.environ.get('MODELSCOPE_CACHE', '')}|{hub_id}"


def hub_problem(timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """None if ModelScope's endpoint accepts a TCP connection within `timeout_s`; else why not.

    Runs in a thread with a deadline: a failing DNS lookup can take 20 s by itself.
    """
    from modelscope.hub.utils.utils import get_endpoint

    endpoint = get_endpoint()
    parts = urlsplit(endpoint)
    host, port = parts.hostname or endpoint, parts.port or 443
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{endpoint}: {error.strerror or error}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"{endpoint}: no answer within {timeout_s:g} s"


def resolve(settings: Settings) -> tuple[Settings, list[ModelSource]]:
    """The settings with each model's source resolved, and the sources for the summary."""
    sources = [locate("model", settings.model), locate("vad_model", settings.vad_model)]
    if settings.speakers:
        sources.append(locate("speaker_model", settings.speaker_model))
    remote = [s for s in sources if s.where.startswith("model hub")]
    if remote and (problem := hub_problem()):
        raise StartupError(unreachable(remote, problem))
    resolved = settings.model_copy(update={s.setting: s.load_from for s in sources})
    return resolved, sources


def unreachable(remote: list[ModelSource], problem: str) -> str:
    names = " and ".join(f"{s.value} ({flag(s.setting)})" for s in remote)
    return (
        f"Cannot get {names}: not in the local model cache (~/.cache/modelscope), and the "
        f"model hub cannot be reached from here ({problem}). Three ways out: (1) download "
        "the models once on a machine with internet access, copy the directories here and "
        "point at them: --model /path/to/SenseVoiceSmall --vad-model /path/to/fsmn-vad (or "
        "SENSEVOICE_MODEL and SENSEVOICE_VAD_MODEL; --vad-model silero-vad needs no "
        "download at all); (2) let this machine reach the hub and start again; or (3) to "
        "try the service without any download, build the test checkpoint (random weights: "
        "the words are nonsense, every code path is real): python -m "
        f"sensevoice_server.testing.checkpoint --size tiny {TRY_DIR}, then start with "
        f"--model {TRY_DIR} --vad-model silero-vad."
    )
