"""Secrets out of text meant for people: log lines, start-up messages, the cache's location.

A password or key can ride in a URL in several forms: `scheme://user:PASSWORD@host`, a
query (or fragment) parameter such as `?password=` (redis-py reads it) or `?api_key=` (our
WebSocket takes it: browsers cannot set headers there), and those names %-encoded
(`?api%5Fkey=`), which servers decode before matching. `redact` masks the value of each,
wherever it sits in the text, and leaves everything else as it was: a log line stays a log
line, a URL stays a URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "***"

# `scheme://user:password@`: everything between the user's colon and the last `@` before
# whitespace (an unescaped `/`, `?` or `#` in a password must not end the mask early).
USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<secret>[^@\s]+)@")
# `name=value` after `?`, `&`, `;`, `#`, a space or a quote; the name may be %-encoded.
PARAMETER = re.compile(
    r"(?:(?<=[?&;#\s\"'(])|^)(?P<name>(?:[A-Za-z0-9_.\-~+]|%[0-9A-Fa-f]{2})+)="
    r"(?P<value>[^&#\s\"'<>]*)"
)
SECRET_NAMES = frozenset(
    {"key", "apikey", "api_key", "password", "passwd", "pass", "pwd", "secret", "token", "auth",
     "sig", "signature", "credentials"}
)  # fmt: skip
SECRET_ENDINGS = ("_key", "_password", "_passwd", "_secret", "_token", "_sig", "password")


def redact(text: str) -> str:
    """`text` with every password and key in a URL form replaced by `***`."""
    if "=" not in text and "@" not in text:  # the common case: nothing to look at
        return text
    text = USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return PARAMETER.sub(_mask_secret_parameter, text)


def _mask_secret_parameter(match: re.Match[str]) -> str:
    if not match["value"] or not is_secret_name(match["name"]):
        return match[0]
    return f"{match['name']}={MASK}"


def is_secret_name(name: str) -> bool:
    """`api_key`, `API-Key`, `api%5Fkey`, `redis_password`...: the names that carry secrets,
    decoded as a server decodes them (repeatedly: a proxy may decode once more)."""
    for _ in range(3):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    name = name.lower().replace("-", "_")
    return name in SECRET_NAMES or name.endswith(SECRET_ENDINGS)
