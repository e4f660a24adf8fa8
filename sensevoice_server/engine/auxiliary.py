"""funasr's AutoModel for the engine's helper models (the VAD, CAM++), loaded one way.

A helper model that funasr cannot load stops start-up with one line naming the setting
(errors.py's ModelLoadError), instead of funasr's traceback.
"""

from __future__ import annotations

from typing import Any

from sensevoice_server.errors import ModelLoadError


def load_auxiliary(flag: str, model: str, device: str, **options: Any) -> tuple[Any, str]:
    """(the AutoModel, the directory its files came from) for `model`, named by `flag`."""
    from funasr import AutoModel

    try:
        automodel = AutoModel(
            model=model, device=device, ncpu=1, disable_update=True, disable_pbar=True,
            disable_log=True, **options,
        )  # fmt: skip
    except Exception as error:
        raise ModelLoadError(f"{flag} {model}: funasr could not load it: {error}") from error
    return automodel, automodel.kwargs.get("model_path") or model
