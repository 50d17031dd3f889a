"""Ctrl-C and SIGTERM for the command line: raised as KeyboardInterrupt, and also remembered.

CPython prints and drops an exception raised inside a weakref callback, and the import machinery
runs such callbacks: a Ctrl-C that lands in one while modules load vanishes, and the command would
go on to finish its work. The memory lets the command notice at its next checkpoint.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

_requested = False


def install() -> None:
    """SIGTERM (a service manager, `kill`) cancels like Ctrl-C: the partial reply is kept, the model freed."""
    global _requested
    _requested = False
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if sys.unraisablehook is not _quiet_about_interrupts:
        global _report_unraisable
        _report_unraisable = sys.unraisablehook
        sys.unraisablehook = _quiet_about_interrupts


def checkpoint() -> None:
    """Raise the interrupt again if one arrived and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


_report_unraisable: Any = sys.unraisablehook


def _quiet_about_interrupts(unraisable: Any) -> None:
    """The user sees "cancelled" once, not the traceback of an interrupt that a checkpoint raises again."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        _report_unraisable(unraisable)
