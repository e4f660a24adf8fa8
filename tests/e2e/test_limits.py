"""Bodies over the limit are refused before they are read: a real socket, a lying client.

The app serves with a 2 MB upload limit. A client that announces 300 MB and then trickles
its body must get its 413 within a second, on every route that takes uploads; a chunked
body (no length announced) is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from sensevoice_server.testing.servers import AppProcess

UPLOAD_ROUTES = ["/api/transcribe", "/v1/audio/transcriptions", "/api/batch", "/gradio_api/upload"]
BOUNDARY = "limit-test-boundary"


def open_request(url: str, route: str, headers: dict[str, str]) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = f"POST {route} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    return sock


def read_status(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def part_header(field: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
        'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_an_announced_300_mb_body_gets_413_within_a_second(
    app_server: AppProcess, route: str
) -> None:
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(300 * 10**6),
    }
    started = time.monotonic()
    with open_request(app_server.url, route, headers) as sock:
        field = "files" if route in ("/api/batch", "/gradio_api/upload") else "file"
        sock.sendall(part_header(field) + b"\0" * 1000)  # a trickle, then nothing
        status, answer = read_status(sock, timeout=5)
    assert status == 413, answer
    assert time.monotonic() - started < 1.0
    assert httpx.get(f"{app_server.url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(
    app_server: AppProcess, route: str
) -> None:
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Transfer-Encoding": "chunked",
    }
    field = "files" if route in ("/api/batch", "/gradio_api/upload") else "file"
    chunk = b"\0" * 256 * 1024
    sent = 0
    status = None
    with open_request(app_server.url, route, headers) as sock:
        body = part_header(field)
        sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        try:
            while sent < 40 * 10**6:  # twenty times the limit, if nothing stopped us
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server has answered and closed: what we want
        status, answer = read_status(sock, timeout=5)
    assert status == 413, answer
    limit = 4 * 10**6 if route == "/api/batch" else 2 * 10**6  # the app_server fixture's
    # what was written includes what sat in the loopback socket buffers: 2-6 MB measured
    # (they grow with what the server read before it stopped reading)
    assert sent < limit + 8 * 10**6, f"{sent / 1e6:.1f} MB were sent before the refusal"
    assert httpx.get(f"{app_server.url}/health", timeout=5).status_code == 200


def test_a_body_under_the_limit_is_still_served(app_server: AppProcess) -> None:
    from tests.support.samples import EN

    answer = httpx.post(
        f"{app_server.url}/api/transcribe", files={"file": ("en.wav", EN.read_bytes())}, timeout=60
    )
    assert answer.status_code == 200, answer.text
