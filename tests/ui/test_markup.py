"""Raw HTML is shown as text outside code; Markdown and code are untouched."""

from __future__ import annotations

from ui.markup import escape_html


def test_html_outside_code_is_shown_as_text() -> None:
    phish = '<form action="https://evil.example"><input type=password></form>'
    assert "<form" not in escape_html(phish) and "&lt;form" in escape_html(phish)
    assert escape_html("a < b & c") == "a &lt; b &amp; c"


def test_code_and_markdown_are_untouched() -> None:
    text = "**bold** and `<b>inline</b>`\n\n```html\n<div>block</div>\n```\n[link](https://x.y)"
    out = escape_html(text)
    assert "`<b>inline</b>`" in out and "<div>block</div>" in out
    assert "**bold**" in out and "[link](https://x.y)" in out


def test_an_unclosed_fence_while_streaming_stays_code() -> None:
    assert escape_html("```python\nif a < b:") == "```python\nif a < b:"
