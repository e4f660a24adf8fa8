"""Many large uploads at once cost memory in proportion to a bound, not to their number.

Thirty clients post the same 19 MB WAV at once to an app with a 20 MB upload limit and room
for 200 MB of uploads in flight; all are cache hits. Bodies are spooled to disk and hashed
from there in chunks, so the server's resident memory barely moves (it grew by about 1.1 GB
when each body was read into memory whole, and kept 600 MB of it afterwards). Uploads past
the 200 MB are told 429 with Retry-After, and a client that retries gets its answer.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from sensevoice_server.testing.servers import AppProcess, run_app
from tests.support.samples import EN

LIMIT_MB = 20
IN_FLIGHT_MB = 200
CLIENTS = 30
FILE_MB = 19
BOUNDARY = "upload-memory-boundary"


def wide_wav(megabytes: float) -> bytes:
    """A WAV of many bytes and few seconds (8 channels of 48 kHz 32-bit PCM: 12 s for 19
    MB), so the one real decode stays cheap."""
    rate, channels = 48_000, 8
    frames = int(megabytes * 1e6) // (channels * 4) - 100
    tone = np.sin(np.arange(frames) * 2 * np.pi * 220 / rate) * 0.3 * 2**31
    noise = np.random.default_rng(0).normal(0, 2**24, (frames, channels))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(4)
        out.setframerate(rate)
        out.writeframes((tone[:, None] + noise).astype("<i4").tobytes())
    return buffer.getvalue()


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since it was last reset) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (proc(5), clear_refs "5")."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def app(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[AppProcess]:  # fmt: skip
    logs = tmp_path_factory.mktemp("upload-memory")
    env = {**model_env, "SENSEVOICE_MAX_UPLOAD_MB": str(LIMIT_MB),
           "SENSEVOICE_MAX_INFLIGHT_UPLOAD_MB": str(IN_FLIGHT_MB),
           "SENSEVOICE_CACHE_URL": f"sqlite:///{logs}/cache.sqlite3"}  # fmt: skip
    with run_app(env, logs) as app:
        yield app


@pytest.fixture(scope="module")
def big_wav() -> bytes:
    return wide_wav(FILE_MB)


async def post_until_answered(client: httpx.AsyncClient, body: bytes) -> tuple[int, int]:
    """Post as a well-behaved client does: retry a 429 after its Retry-After.
    Returns (final status, 429s seen)."""
    refused = 0
    while True:
        answer = await client.post("/api/transcribe", files={"file": ("big.wav", body)})
        if answer.status_code != 429:
            assert answer.status_code == 200, answer.text
            assert answer.json()["from_cache"] is True
            return answer.status_code, refused
        refused += 1
        await asyncio.sleep(int(answer.headers["Retry-After"]))


def test_thirty_concurrent_uploads_near_the_limit_cost_memory_by_the_bound_not_the_count(
    app: AppProcess, big_wav: bytes
) -> None:
    for _ in range(2):  # a miss, then a hit: every path has run once before we measure
        answer = httpx.post(
            f"{app.url}/api/transcribe", files={"file": ("big.wav", big_wav)}, timeout=120
        )
        assert answer.status_code == 200, answer.text
    pid = app.process.pid
    time.sleep(1)
    before = memory_mb(pid, "VmRSS")
    reset_peak(pid)

    async def flood() -> list[tuple[int, int]]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=app.url, timeout=120, limits=limits) as client:
            return await asyncio.gather(
                *(post_until_answered(client, big_wav) for _ in range(CLIENTS))
            )

    outcomes = asyncio.run(flood())
    peak = memory_mb(pid, "VmHWM")
    time.sleep(2)
    after = memory_mb(pid, "VmRSS")
    refused = sum(count for _, count in outcomes)
    print(
        f"\n[upload memory] {CLIENTS} x {FILE_MB} MB, {refused} 429s retried: RSS "
        f"{before:.0f} MB, peak +{peak - before:.0f} MB, after +{after - before:.0f} MB"
    )
    assert [status for status, _ in outcomes] == [200] * CLIENTS
    assert peak - before < 150, f"peak grew by {peak - before:.0f} MB"
    assert after - before < 100, f"{after - before:.0f} MB were kept after the uploads"
    assert refused > 0  # 570 MB at once do not fit in 200 MB: some waited their turn


def test_an_upload_that_does_not_fit_is_refused_and_the_client_sees_the_429(
    app: AppProcess,
) -> None:
    """Ten uploads that have declared 19 MB each and have not sent them yet hold 190 MB of
    the 200. The next upload is refused with 429 and Retry-After: at once when it asked
    `Expect: 100-continue` (no body is invited); after its body was read and dropped when it
    simply sends (httpx), so it sees the answer, not a reset; and a chunked one as soon as
    its bytes pass the room left. Once the ten go away, their bytes are free again."""
    size = FILE_MB * 10**6
    with ExitStack() as stack:
        for _ in range(IN_FLIGHT_MB // FILE_MB):
            stack.enter_context(open_upload(app.url, size))
        head = answer_to_expect_continue(app.url, size)
        assert head.startswith(b"HTTP/1.1 429"), head[:200]
        assert b"retry-after: 2" in head.lower()

        body = b"\0" * size
        declared = httpx.post(
            f"{app.url}/api/transcribe", files={"file": ("b.wav", body)}, timeout=30
        )
        chunked = httpx.post(
            f"{app.url}/api/transcribe", content=in_chunks(multipart(body)),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, timeout=30,
        )  # fmt: skip
        for answer in (declared, chunked):
            assert answer.status_code == 429, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert "MB of uploads are already in progress" in answer.json()["error"]["message"]
    deadline = time.monotonic() + 10
    while (status := post_chunked(app.url, EN.read_bytes())) == 429:
        assert time.monotonic() < deadline, "the held bytes were not given back"
        time.sleep(0.2)
    assert status == 200


def open_upload(url: str, size: int, *extra: str) -> socket.socket:
    """A raw upload that declares `size` bytes and sends only its headers."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = ["POST /api/transcribe HTTP/1.1", f"Host: {parts.netloc}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
            f"Content-Length: {size}", *extra]  # fmt: skip
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def answer_to_expect_continue(url: str, size: int) -> bytes:
    """The head of the answer to an upload that asks `Expect: 100-continue`: a 100 Continue
    while the server has not yet seen the held uploads' headers (then ask again), else the
    final answer."""
    deadline = time.monotonic() + 10
    while True:
        with open_upload(url, size, "Expect: 100-continue") as sock:
            sock.settimeout(5)
            head = sock.recv(65536)
        if not head.startswith(b"HTTP/1.1 100") or time.monotonic() > deadline:
            return head
        time.sleep(0.1)


def multipart(data: bytes) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"'
            "\r\nContent-Type: audio/wav\r\n\r\n")  # fmt: skip
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def in_chunks(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(url: str, data: bytes) -> int:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = httpx.post(
        f"{url}/api/transcribe", content=in_chunks(multipart(data)), headers=headers, timeout=60
    )
    return answer.status_code
