"""`python -m tests [pytest args]`: the test run `make test` uses, guaranteed to end.

The suite loads native libraries (llama.cpp, Chromium's driver, PostgreSQL's client) and starts
worker pools; any of them can keep an interpreter from exiting after the last test has passed, and a
CI job then hangs until it is killed with every result lost. So once pytest has reported, this says
what was still running and leaves with pytest's own exit code, without waiting on finalizers.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import sys
import threading

import pytest

# Whatever runs after the summary (plugin teardown, the PostgreSQL stop) gets this long.
TEARDOWN_BUDGET_S = 300


class _ExitGuard:
    """Arms a watchdog once the run is over: a hang in teardown dumps every thread's stack and exits."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        faulthandler.dump_traceback_later(TEARDOWN_BUDGET_S, exit=True)


def _report_leftovers() -> None:
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    children = [f"{p.name} (pid {p.pid})" for p in multiprocessing.active_children()]
    if threads:
        print(f"tests: non-daemon threads still running at exit: {', '.join(threads)}", file=sys.stderr)
    if children:
        print(f"tests: child processes still running at exit: {', '.join(children)}", file=sys.stderr)


def main() -> None:
    code = int(pytest.main(sys.argv[1:], plugins=[_ExitGuard()]))
    faulthandler.cancel_dump_traceback_later()
    _report_leftovers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
