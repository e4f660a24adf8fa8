"""No password or key in any URL form survives `redact` (redaction.py), and text without one
is left exactly as it was."""

from __future__ import annotations

import pytest

from sensevoice_server.redaction import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:hunter2@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:hunter2@host/0", "redis://:***@host/0"),
        ("rediss://u:p%40ss/w#rd@host", "rediss://u:***@host"),
        ("redis://host/0?password=hunter2", "redis://host/0?password=***"),
        ("redis://host/0?db=1&password=hunter2&x=1", "redis://host/0?db=1&password=***&x=1"),
        (
            '"WebSocket /ws/transcribe?api_key=k-123" 401',
            '"WebSocket /ws/transcribe?api_key=***" 401',
        ),
        ("/ws/transcribe?api%5Fkey=k-123", "/ws/transcribe?api%5Fkey=***"),
        ("/ws/transcribe?api%5fkey=k-123", "/ws/transcribe?api%5fkey=***"),
        ("/ws/transcribe?api%255Fkey=k-123", "/ws/transcribe?api%255Fkey=***"),
        ("/ws?API-Key=k-123&session_id=s1", "/ws?API-Key=***&session_id=s1"),
        ("/x?%70assword=p", "/x?%70assword=***"),
        ("/x?access_token=t&redis_password=p", "/x?access_token=***&redis_password=***"),
        ("got 'redis://h/0?password=pw'", "got 'redis://h/0?password=***'"),
        ("https://h/p#token=t", "https://h/p#token=***"),
    ],
)
def test_secrets_in_urls_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "POST /api/transcribe 200 312.4 ms audio=5.06s cache=miss inference=298.1ms",
        "redis://host:6379/0",
        "sqlite:///var/cache/sensevoice/results.sqlite3",
        '127.0.0.1:50112 - "WebSocket /ws/transcribe?session_id=abc" [accepted]',
        "/ws/transcribe?monkey=1&keys=2&api_key=",
        "mail me at someone@example.com",
    ],
)
def test_text_without_secrets_is_left_as_it_was(text: str) -> None:
    assert redact(text) == text
