"""Sign-in throttling per account name and per client address, with exponential backoff.

A few failures are free (typos happen). After that, each further failure doubles the wait
before the next attempt is even checked, up to a cap; attempts made during the wait are
refused without looking at the password, so guessing gains nothing by hurrying. Account names
are counted whether or not the account exists, which keeps the answers for an unknown user and
a wrong password identical. A success clears its account's count but not its address's: one
valid account must not reset the budget for guessing others from the same address.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 900.0
FORGET_AFTER_S = 3600.0  # a quiet hour starts the count again
MAX_KEYS = 100_000


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        *,
        account_free: int = ACCOUNT_FREE_FAILURES,
        address_free: int = ADDRESS_FREE_FAILURES,
        base_s: float = BACKOFF_BASE_S,
        max_s: float = BACKOFF_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = {"account": account_free, "address": address_free}
        self._base_s = base_s
        self._max_s = max_s
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, account: str, address: str) -> float:
        """Seconds before this account may be tried from this address again (0: go ahead)."""
        now = self._clock()
        with self._lock:
            return max(self._wait(key, now) for key in self._keys(account, address))

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(account, address):
                record = self._live(key, now)
                self._failures[key] = _Failures((record.count if record else 0) + 1, now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            self._failures.pop(("account", _account_key(account)), None)

    def _keys(self, account: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("account", _account_key(account)), ("address", address)

    def _live(self, key: tuple[str, str], now: float) -> _Failures | None:
        record = self._failures.get(key)
        if record is not None and now - record.last > FORGET_AFTER_S:
            del self._failures[key]
            return None
        return record

    def _wait(self, key: tuple[str, str], now: float) -> float:
        record = self._live(key, now)
        free = self._free[key[0]]
        if record is None or record.count < free:
            return 0.0
        delay = min(self._max_s, self._base_s * 2 ** (record.count - free))
        return max(0.0, record.last + delay - now)


def _account_key(account: str) -> str:
    # Case variants of one name share a count, so they cannot multiply the free attempts.
    return account.strip().casefold()
