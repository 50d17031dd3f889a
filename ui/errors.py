"""Errors shown to the user: expected outcomes, so no server traceback is printed for them."""

from __future__ import annotations

import gradio as gr


def user_error(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)
