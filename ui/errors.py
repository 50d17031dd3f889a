"""Errors shown to the user: expected outcomes, so no server traceback is printed for them."""

from __future__ import annotations

import gradio as gr

from ui.markup import text_html


def user_error(message: str) -> gr.Error:
    # Gradio shows the message as HTML in a toast; it often quotes a file name or a backend's words.
    return gr.Error(text_html(message), print_exception=False)
