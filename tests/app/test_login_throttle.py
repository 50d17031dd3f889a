"""The throttle's arithmetic, on a fake clock (the real server's behaviour: tests/reliability)."""

from __future__ import annotations

from app.login_throttle import BACKOFF_MAX_S, FORGET_AFTER_S, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_failures_then_doubling_waits_up_to_the_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=3, address_free=100, clock=clock)
    waits = []
    for _ in range(3 + 12):
        assert throttle.wait_s("Alice", "10.0.0.1") == 0
        throttle.failed("alice", "10.0.0.1")
        waits.append(throttle.wait_s("ALICE", "10.0.0.9"))  # case variants share the account's count
        clock.now += waits[-1]
    assert waits[:3] == [0, 0, 1.0] and waits[3] == 2.0 and waits[4] == 4.0
    assert max(waits) == BACKOFF_MAX_S


def test_a_success_clears_the_account_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=2, address_free=2, clock=clock)
    for name in ("a", "b"):
        throttle.failed(name, "10.0.0.1")
    throttle.failed("a", "10.0.0.1")
    throttle.succeeded("a", "10.0.0.1")
    assert throttle.wait_s("a", "10.0.0.2") == 0
    assert throttle.wait_s("c", "10.0.0.1") > 0  # the address keeps its count


def test_a_quiet_hour_forgets() -> None:
    clock = Clock()
    throttle = LoginThrottle(account_free=1, address_free=1, clock=clock)
    throttle.failed("a", "x")
    throttle.failed("a", "x")
    assert throttle.wait_s("a", "x") > 0
    clock.now += FORGET_AFTER_S + 1
    assert throttle.wait_s("a", "x") == 0
