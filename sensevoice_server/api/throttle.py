"""Guessing costs time: after a few failed logins or API keys, a client address must wait.

An address may fail `free` times; its next failure makes it wait 1 s, each further one twice
as long, up to `max_wait_s`. While it waits, every attempt it makes is refused (429 with
Retry-After) without being checked, so a right guess looks the same as a wrong one. A login
starts the address afresh, and so do 15 quiet minutes. Across all addresses together at most
`per_minute` failures a minute are heard from addresses that failed lately; beyond that they
all wait until the oldest of those failures is a minute old. An address without failures is
always heard, so the right user is not locked out by someone else's guessing.

The gap: rate limiters (pyrate-limiter, limits, slowapi) count requests in windows; this
counts failures, grows the wait with each one, and forgets an address on success.
Memory is bounded (the oldest records go first), and IPv6 addresses count by their /64,
which one host commonly holds whole.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

FORGET_AFTER_S = 15 * 60.0  # quiet time after which an address's failures are forgotten
WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


@dataclass
class Record:
    failures: int = 0
    last_failure: float = 0.0
    wait_until: float = 0.0


class Failure(NamedTuple):
    failures: int  # this address's failures lately, this one included
    wait_s: float  # how long it must now wait; 0: it may try again at once


class FailureThrottle:
    """Failed attempts per client address, and across all of them (in memory, per process)."""

    def __init__(
        self,
        free: int,
        max_wait_s: float,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.free = free
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._recent: deque[float] = deque(maxlen=per_minute)  # times of the latest failures

    def wait_s(self, address: str) -> float:
        """Seconds `address` must wait before it is heard again; 0: it is heard now."""
        now = self.clock()
        record = self._record(address, now)
        if record is None:
            return 0.0
        return max(record.wait_until - now, self._everyone_waits_s(now), 0.0)

    def failed(self, address: str) -> Failure:
        """Count a failed attempt from `address`."""
        now = self.clock()
        record = self._record(address, now) or Record()
        record.failures += 1
        record.last_failure = now
        if record.failures >= self.free:
            doublings = min(record.failures - self.free, 30)
            record.wait_until = now + min(self.max_wait_s, 2.0**doublings)
        self._remember(key_of(address), record)
        self._recent.append(now)
        return Failure(record.failures, max(record.wait_until - now, 0.0))

    def succeeded(self, address: str) -> None:
        """A right login: this address starts afresh."""
        self._records.pop(key_of(address), None)

    def _record(self, address: str, now: float) -> Record | None:
        key = key_of(address)
        record = self._records.get(key)
        if record is not None and now - record.last_failure > FORGET_AFTER_S:
            del self._records[key]
            return None
        return record

    def _remember(self, key: str, record: Record) -> None:
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_addresses:
            self._records.popitem(last=False)

    def _everyone_waits_s(self, now: float) -> float:
        """While the last `per_minute` failures all fell within a minute, until the oldest
        of them is a minute old."""
        if len(self._recent) < (self._recent.maxlen or 0):
            return 0.0
        return max(self._recent[0] + WINDOW_S - now, 0.0)


def key_of(address: str) -> str:
    """An IPv4 address as it is, an IPv6 one by its /64; anything else (a Unix socket) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
