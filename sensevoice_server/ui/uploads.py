"""What becomes of the UI's uploads once an event has read them.

Uploads land in Gradio's folder (api/gradio_uploads.py keeps it bounded) and Gradio's
`delete_cache` removes each one `ui_upload_ttl_s` after it was last used. Some are read
once and go as soon as their event is over:
- a Live tab chunk (the microphone's stream event): it is never read again;
- the Several files tab's files, once their run has finished (the tab then clears its list).
Anything else an event reads (the Transcribe tab's audio, which the page still plays and may
transcribe again in another language) has its age reset instead. Only files that came
through the upload route are ever removed (`Blocks.upload_file_set`): an example clip or a
file the UI offers for download is not a client's to remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.block_function import BlockFunction
from gradio.utils import get_upload_folder

from sensevoice_server.api.gradio_guard import file_paths


class ServiceBlocks(gr.Blocks):
    """gr.Blocks that tidies the uploads each event read, as the module says, queued from
    its construction on as `queue` says: `Blocks.__init__` calls `queue()` itself, and
    every call builds Gradio's whole FastAPI app again (0.09 s of each start)."""

    def __init__(self, *args: Any, queue: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._queue_settings = queue or {}  # before Blocks.__init__, which calls queue()
        super().__init__(*args, **kwargs)
        self.read_once: set[int] = set()  # ids of the inputs whose uploads go once read

    def queue(self, *args: Any, **kwargs: Any) -> ServiceBlocks:
        super().queue(*args, **{**self._queue_settings, **kwargs})
        return self

    def remove_once_read(self, component: gr.components.Component) -> None:
        """Remove the uploads this input hands an event once that event has succeeded."""
        self.read_once.add(component._id)

    async def process_api(
        self, block_fn: BlockFunction | int, inputs: list[Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        function = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        succeeded = False
        try:
            result: dict[str, Any] = await super().process_api(block_fn, inputs, *args, **kwargs)
            succeeded = True
            return result
        finally:
            gone, used = self._sort(function, inputs, succeeded)
            await asyncio.to_thread(remove_and_touch, gone, used)
            self.upload_file_set.difference_update(gone)

    def _sort(
        self, function: BlockFunction, inputs: list[Any], succeeded: bool
    ) -> tuple[list[str], list[str]]:
        """(uploads to remove now, uploads whose age starts again)."""
        streamed = any(event == "stream" for _, event in function.targets)
        gone: list[str] = []
        used: list[str] = []
        for component, value in zip(function.inputs, inputs, strict=False):
            paths = [p for p in file_paths(value) if isinstance(p, str)]
            uploads = [p for p in paths if p in self.upload_file_set]
            read_once = streamed or (succeeded and component._id in self.read_once)
            (gone if read_once else used).extend(uploads)
        return gone, used


def remove_and_touch(gone: list[str], used: list[str]) -> None:
    folder = Path(get_upload_folder())
    for path in gone:
        with contextlib.suppress(OSError):
            os.remove(path)
        parent = Path(path).parent
        if parent.parent == folder:  # an upload's own folder (api/gradio_uploads.py)
            with contextlib.suppress(OSError):
                parent.rmdir()
    for path in used:
        with contextlib.suppress(OSError):
            os.utime(path)  # Gradio's delete_cache ages files by their ctime


def delete_cache(ttl_s: float) -> tuple[int, int]:
    """Gradio's delete_cache: (how often it looks, in s; the age it removes, in s)."""
    return max(1, min(60, round(ttl_s / 10))), max(1, round(ttl_s))
