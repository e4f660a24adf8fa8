"""The secrets of one process (API keys, the UI's user:password), the logins they opened, and
the throttle that makes guessing them slow; auth.py and login.py check requests against it.

A key or password is never logged: a failure is one WARNING line naming the address only.
"""

from __future__ import annotations

import logging
import math
import secrets

from sensevoice_server.api.sessions import LoginSessions
from sensevoice_server.api.throttle import FailureThrottle
from sensevoice_server.errors import TooManyFailures
from sensevoice_server.settings import Settings

log = logging.getLogger("sensevoice_server.api.auth")  # one logger for every refusal
MAX_LOGGED_PATH = 100


class Credentials:
    """The secrets of one process (its API keys, the UI's user:password), the logins they
    opened, and the throttle that makes guessing them slow."""

    def __init__(self, settings: Settings) -> None:
        self.keys = [key.get_secret_value() for key in settings.api_keys]
        self.ui_login = settings.ui_auth.get_secret_value() if settings.ui_auth else None
        self.ui_public = settings.ui_public
        self.sessions = LoginSessions(settings.ui_session_hours * 3600)
        self.throttle = FailureThrottle(
            settings.auth_free_failures,
            settings.auth_max_wait_s,
            settings.auth_failures_per_minute,
        )

    @property
    def keys_required(self) -> bool:
        return bool(self.keys)

    @property
    def ui_login_required(self) -> bool:
        """The UI asks for a login when it has a password, or keys are set and the operator
        did not open it on purpose (SENSEVOICE_UI_PUBLIC)."""
        return bool(self.ui_login) or (self.keys_required and not self.ui_public)

    def valid_key(self, given: str) -> bool:
        return any_equal(self.keys, given)

    def valid_login(self, user: str, password: str) -> bool:
        """A UI login: an API key as the password (any user name), or user:password."""
        return self.valid_key(password) or (
            self.ui_login is not None and any_equal([self.ui_login], f"{user}:{password}")
        )

    def check_key(self, given: str, address: str, path: str) -> bool:
        """Whether `given` is an API key, asked only of an address that need not wait
        (TooManyFailures otherwise); a wrong key counts against `address`."""
        self.refuse_if_waiting(address)
        if self.valid_key(given):
            return True
        self.failed(address, f"wrong API key for {path[:MAX_LOGGED_PATH]!r}")
        return False

    def refuse_if_waiting(self, address: str) -> None:
        wait = math.ceil(self.throttle.wait_s(address))
        if wait > 0:
            raise TooManyFailures(
                f"Too many failed logins or API keys lately; try again in {wait} s.",
                retry_after=wait,
            )

    def failed(self, address: str, what: str) -> int:
        """Count and log a failure; the whole seconds `address` must now wait (0: none)."""
        failure = self.throttle.failed(address)
        wait = math.ceil(failure.wait_s)
        log.warning("%s from %s (%d failed lately%s)", what, address, failure.failures,
                    f"; it now waits {wait} s" if wait else "")  # fmt: skip
        return wait


def any_equal(candidates: list[str], given: str) -> bool:
    """Constant-time comparison against every candidate (no early exit)."""
    matches = [secrets.compare_digest(given.encode(), c.encode()) for c in candidates]
    return any(matches)


def describe_access(credentials: Credentials, api_paths: str = "/api, /v1, /ws") -> str:
    """One start-up line on which ways in are open."""
    if not credentials.keys_required and not credentials.ui_login_required:
        return "access: open to anyone who can reach this address (no API keys set)"
    parts = []
    if credentials.keys_required:
        parts.append(f"{api_paths} need an API key")
    else:
        parts.append(f"{api_paths} are open (no API keys set)")
    if credentials.ui_login_required:
        ways = " or ".join(
            w for w, on in (("an API key", credentials.keys_required),
                             ("the UI user:password", bool(credentials.ui_login))) if on
        )  # fmt: skip
        parts.append(f"the web UI and Gradio API need a Bearer key or a login with {ways}")
    else:
        parts.append("the web UI and Gradio API are open to anyone (SENSEVOICE_UI_PUBLIC)")
    return "access: " + "; ".join(parts) + "; /health, /ready, /metrics, /cache/stats are open"
