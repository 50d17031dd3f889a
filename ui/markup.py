"""Text from models, users and PDFs, made safe to render as Markdown.

Gradio's sanitizer removes scripts and event handlers, but it keeps harmless-looking
HTML such as a <form> with a password field posting elsewhere, which a prompt-injected
document could make the model print. Raw HTML is never needed in a chat, so outside
code it is shown as text; Markdown and code blocks render as usual.
"""

from __future__ import annotations

import re

# Fenced blocks first, then inline code spans: their content is already shown verbatim.
_CODE = re.compile(r"(```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`)", re.DOTALL)


def escape_html(text: str) -> str:
    parts = _CODE.split(text)
    # split() with one group alternates: text, code, text, code, ...
    return "".join(p if i % 2 else p.replace("&", "&amp;").replace("<", "&lt;") for i, p in enumerate(parts))
