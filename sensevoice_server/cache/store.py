"""The store protocol, the JSON value codec, and the `none` store."""

from __future__ import annotations

import json
from typing import Any, Protocol


class CorruptEntry(Exception):
    """A stored value that is not a JSON object; the store has already deleted it."""


class StoreUnusable(Exception):
    """The store cannot be used right now, and it has logged why (once) itself: callers serve
    without the cache, count the failure, and do not log it again."""


class Store(Protocol):
    name: str  # "sqlite", "redis" or "none": the `store` field of stats and metrics
    location: str  # where it lives, safe to log (no passwords)

    def get(self, key: str) -> dict[str, Any] | None: ...
    def set(self, key: str, value: dict[str, Any]) -> None: ...
    def clear(self) -> int: ...  # how many entries were removed
    def stats(self) -> dict[str, int]: ...  # {"entries": ..., "bytes": ...}
    def close(self) -> None: ...


def encode(value: dict[str, Any]) -> str:
    # allow_nan=False: NaN is not JSON; fail the write rather than store what others can't read.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise CorruptEntry(str(e)) from e
    if not isinstance(value, dict):
        raise CorruptEntry(f"expected a JSON object, got {type(value).__name__}")
    return value


class NoStore:
    """`none`: every lookup misses and nothing is kept."""

    name = "none"
    location = "none"

    def get(self, key: str) -> dict[str, Any] | None:
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        pass

    def clear(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"entries": 0, "bytes": 0}

    def close(self) -> None:
        pass
