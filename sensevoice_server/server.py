"""uvicorn with a graceful drain: on SIGTERM, keep answering (503) while queued work finishes."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from sensevoice_server.service import Transcriber

log = logging.getLogger("sensevoice_server")


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains the model's queue while still answering.

    Plain uvicorn stops listening at once on SIGTERM. We keep listening so that new
    requests get a clear 503 (and /ready turns 503 for load balancers) while running and
    queued transcriptions finish; then uvicorn's own graceful shutdown takes over.
    A second signal exits at once. The drain waits in a thread of its own, so it works even
    while the event loop is busy.
    """

    def __init__(
        self, config: uvicorn.Config, transcriber: Transcriber, drain_timeout_s: float
    ) -> None:
        super().__init__(config)
        self.transcriber = transcriber
        self.drain_timeout_s = drain_timeout_s
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        engine = self.transcriber.engine
        engine.stop_accepting()
        log.info("SIGTERM: draining %d job(s) before exit", self.transcriber.queue_depth)
        threading.Thread(target=self._drain_then_exit, daemon=True).start()

    def _drain_then_exit(self) -> None:
        if not self.transcriber.wait_idle(self.drain_timeout_s):
            log.warning(
                "drain timeout: exiting with %d job(s) unfinished", self.transcriber.queue_depth
            )
        self.should_exit = True
