"""The web page's calls, made as the browser makes them: the config it is built from, files
through Gradio's upload route, and events through Gradio's queue, each found by the
component (elem_id) and trigger that set it off. For the events gradio_client cannot call
(they have no API name: the page alone uses them)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx


def config(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/config", timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


def props(url: str, elem_id: str) -> dict[str, Any]:
    """The properties the page gets for the component `elem_id`."""
    found = [c["props"] for c in config(url)["components"]
             if c.get("props", {}).get("elem_id") == elem_id]  # fmt: skip
    assert len(found) == 1, f"{len(found)} components with elem_id {elem_id!r}"
    return dict(found[0])


class Page:
    """One browser tab (a Gradio session) on the app at `url`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = secrets.token_hex(8)
        self.client = httpx.Client(base_url=f"{url}/gradio_api", timeout=120)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def upload(self, path: Path) -> dict[str, Any]:
        """`path` sent through the upload route, as the value a file component then holds."""
        answer = self.client.post("/upload", files={"files": (path.name, path.read_bytes())})
        answer.raise_for_status()
        kept = answer.json()[0]
        return {"path": kept, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def event(self, trigger: str, elem_id: str, data: list[Any]) -> dict[str, Any]:
        """The `trigger` event of the component `elem_id`, run with `data`; Gradio's last
        message for it (`success`, and `output` or the error's `output.error`)."""
        joined = self.client.post("/queue/join", json={
            "data": data, "fn_index": event_of(self.url, trigger, elem_id),
            "session_hash": self.session, "event_data": None, "trigger_id": None,
        })  # fmt: skip
        joined.raise_for_status()
        with self.client.stream("GET", "/queue/data", params={"session_hash": self.session}
                                ) as messages:  # fmt: skip
            for line in messages.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return dict(message)
        raise AssertionError(f"no answer to {trigger} on {elem_id}")


def event_of(url: str, trigger: str, elem_id: str) -> int:
    page = config(url)
    ids = {c["id"] for c in page["components"] if c.get("props", {}).get("elem_id") == elem_id}
    return next(
        int(dependency.get("id", index))
        for index, dependency in enumerate(page["dependencies"])
        if any(t[1] == trigger and t[0] in ids for t in dependency.get("targets") or [])
    )
