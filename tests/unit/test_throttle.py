"""The guessing throttle's rules (api/throttle.py), on a clock the test moves: waits begin
after a few failures and double, a login starts afresh, quiet time forgets, and a flood from
many addresses makes those that failed wait while an address without failures is heard."""

from __future__ import annotations

import pytest

from sensevoice_server.api.throttle import FORGET_AFTER_S, FailureThrottle, key_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle(clock: Clock, free: int = 3, max_wait_s: float = 8, per_minute: int = 100
             ) -> FailureThrottle:  # fmt: skip
    return FailureThrottle(free, max_wait_s, per_minute, clock=clock)


def test_waits_begin_after_the_free_failures_and_double_up_to_the_cap(clock: Clock) -> None:
    gate = throttle(clock)
    waits = []
    for _ in range(8):
        assert gate.wait_s("10.0.0.1") == 0  # heard: each try comes once the wait is over
        failure = gate.failed("10.0.0.1")
        waits.append(failure.wait_s)
        clock.now += failure.wait_s
    assert waits == [0, 0, 1, 2, 4, 8, 8, 8]


def test_an_address_that_must_wait_is_told_how_long(clock: Clock) -> None:
    gate = throttle(clock)
    for _ in range(4):
        gate.failed("10.0.0.1")
    assert gate.wait_s("10.0.0.1") == 2
    clock.now += 1.5
    assert gate.wait_s("10.0.0.1") == pytest.approx(0.5)
    assert gate.wait_s("10.0.0.2") == 0  # another address is not held up


def test_a_login_starts_the_address_afresh(clock: Clock) -> None:
    gate = throttle(clock)
    for _ in range(3):
        gate.failed("10.0.0.1")
    clock.now += 1
    gate.succeeded("10.0.0.1")
    assert gate.failed("10.0.0.1").failures == 1


def test_quiet_time_forgets_the_failures(clock: Clock) -> None:
    gate = throttle(clock)
    for _ in range(5):
        gate.failed("10.0.0.1")
    clock.now += FORGET_AFTER_S + 1
    assert gate.wait_s("10.0.0.1") == 0
    assert gate.failed("10.0.0.1").failures == 1


def test_many_failing_addresses_wait_together_but_a_new_one_is_heard(clock: Clock) -> None:
    gate = throttle(clock, free=100, per_minute=10)
    for n in range(10):  # one guess each from ten addresses: no address reaches its limit
        gate.failed(f"10.0.1.{n}")
        clock.now += 1
    assert gate.wait_s("10.0.1.0") == pytest.approx(50)  # until the oldest is a minute old
    assert gate.wait_s("10.0.1.9") == pytest.approx(50)
    assert gate.wait_s("192.0.2.7") == 0  # no failures lately: the right user gets in
    clock.now += 50
    assert gate.wait_s("10.0.1.0") == 0


def test_records_are_bounded(clock: Clock) -> None:
    gate = FailureThrottle(1, 60, 10**6, clock=clock, max_addresses=100)
    for n in range(1000):
        gate.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(gate._records) == 100


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # same /64: one host
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_addresses_count_by_their_64(address: str, key: str) -> None:
    assert key_of(address) == key
