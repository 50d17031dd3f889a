"""`--window`: the app in a native window through pywebview (the optional `desktop` extra)."""

from __future__ import annotations

import sys

INSTALL_HINT = "pip install 'llamadesk[desktop]'"


def open_window(url: str, title: str = "llamadesk") -> bool:
    """Show the app in a native window and block until it closes; False when that is not possible."""
    try:
        import webview
    except ImportError:
        print(
            f"llamadesk: --window needs pywebview ({INSTALL_HINT}); opening the browser instead.",
            file=sys.stderr,
        )
        return False
    try:
        webview.create_window(title, url, width=1200, height=860)
        webview.start()
    except Exception as exc:  # pywebview raises plain Exceptions when no GUI backend can start
        print(
            f"llamadesk: cannot open a native window ({exc}); opening the browser instead.", file=sys.stderr
        )
        return False
    return True
