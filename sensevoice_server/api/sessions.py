"""The web UI's logins: a random id per login, held by this process, so a logout ends it.

The login cookie carries only the id (256 random bits); what it grants lives here. Logging
out removes the id, so a copied cookie stops working at once, and so does every cookie of a
process that restarts, for instance to rotate its keys. The price: a restart sends browsers
back to the login page. With several replicas, nginx pins a browser to one (by cookie), and
that replica holds its login. Bounded: past `max_sessions` the oldest login ends first.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_SESSIONS = 10_000


class LoginSessions:
    """Ids of live logins and when each one ends."""

    def __init__(
        self,
        lifetime_s: float,
        *,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._ends: OrderedDict[str, float] = OrderedDict()  # id -> when it ends

    def open(self) -> str:
        """A new login's id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        self._ends[session_id] = self.clock() + self.lifetime_s
        while len(self._ends) > self.max_sessions:
            self._ends.popitem(last=False)
        return session_id

    def valid(self, session_id: str) -> bool:
        ends = self._ends.get(session_id)
        if ends is None:
            return False
        if self.clock() >= ends:
            del self._ends[session_id]
            return False
        return True

    def end(self, session_id: str) -> None:
        """Log out: the id grants nothing any more."""
        self._ends.pop(session_id, None)
