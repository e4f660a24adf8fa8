"""uvicorn with a graceful drain: on SIGTERM, keep answering (503) while queued work finishes
and every live stream gets the finals of what it sent."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import uvicorn

from sensevoice_server.live import LiveSessions
from sensevoice_server.transcriber import Transcriber

log = logging.getLogger("sensevoice_server")


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains the model's queue while still answering.

    Plain uvicorn stops listening at once on SIGTERM. We keep listening so that new
    requests get a clear 503 (and /ready turns 503 for load balancers) while running and
    queued transcriptions finish, and live streams stop taking audio, get the finals of
    what they sent and are closed with 1001 (uvicorn would close them at once, 1012, and
    the audio of each open utterance would be lost); then uvicorn's own graceful shutdown
    takes over. A second signal exits at once. The drain waits in a thread of its own, so
    it works even while the event loop is busy.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        transcriber: Transcriber,
        live_sessions: LiveSessions | None,
        drain_timeout_s: float,
    ) -> None:
        super().__init__(config)
        self.transcriber = transcriber
        self.live_sessions = live_sessions
        self.drain_timeout_s = drain_timeout_s
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        # live finals still run: their streams were admitted before the drain
        self.transcriber.stop_accepting()
        log.info("SIGTERM: draining %d job(s) before exit", self.transcriber.queue_depth)
        if self.live_sessions is not None:
            log.info("SIGTERM: %d live stream(s) get their finals", self.live_sessions.count)
        threading.Thread(target=self._drain_then_exit, daemon=True).start()

    def _drain_then_exit(self) -> None:
        deadline = time.monotonic() + self.drain_timeout_s
        live = self.live_sessions
        if live is not None:  # not in the signal handler: it takes a lock the thread may hold
            live.begin_drain()
            if not live.wait_closed(self.drain_timeout_s):
                log.warning("drain timeout: closing %d live stream(s) unfinished", live.count)
        left = max(0.0, deadline - time.monotonic())
        if not self.transcriber.wait_idle(left):
            log.warning(
                "drain timeout: exiting with %d job(s) unfinished", self.transcriber.queue_depth
            )
        self.should_exit = True
