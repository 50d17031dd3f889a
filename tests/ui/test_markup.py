"""The one sanitizer: Markdown rendered on the server, then cleaned with an allow-list."""

from __future__ import annotations

from ui.markup import literal, safe_html, text_html


def test_raw_html_is_text_and_markdown_still_renders() -> None:
    out = safe_html('**bold** <form action="https://evil.example"><input type=password></form>')
    assert "<strong>bold</strong>" in out and "<form" not in out and "&lt;form" in out


def test_images_become_links_and_scripts_lose_their_links() -> None:
    out = safe_html("![beacon](https://evil.example/b.png) [x](javascript:alert(1))")
    assert "<img" not in out and 'href="https://evil.example/b.png"' in out and 'href="javascript' not in out


def test_output_is_one_line_and_cleaning_twice_changes_nothing() -> None:
    once = safe_html("```\nif a < b:\n\n    pass\n```")
    assert "\n" not in once and safe_html(once) == once


def test_literal_text_shows_as_written() -> None:
    name = "a <img src=x> *b* [c](d) &amp;"
    assert ">a &lt;img src=x&gt; *b* [c](d) &amp;amp;<" in safe_html(literal(name))
    assert text_html("x < y & z") == "x &lt; y &amp; z"
