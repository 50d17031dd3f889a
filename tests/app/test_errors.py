"""One error channel: typed errors with a code and values, rendered from the one message table."""

from __future__ import annotations

import pytest

from app.chat import MAX_MESSAGE_CHARS, InputRejected, validate_message
from app.documents import DocumentError
from app.errors import AppError, render
from app.language import SUPPORTED, LanguageRejected, detect, language_setting
from app.messages import text, translations
from backends.base import BackendError, BackendUnavailable, ContextOverflow
from storage.repo import NotFound

CODES = [key.split(".", 1)[1] for key in translations()["en"] if key.startswith("errors.")]


@pytest.mark.parametrize("lang", SUPPORTED)
def test_every_error_renders_in_every_language(lang: str) -> None:
    for code in CODES:
        message = render(AppError(code, chars=40_000, limit=100_000, value="xx", supported="en, de"), lang)
        assert message and "{" not in message and "?" not in message.replace("¿", ""), (code, message)
    assert detect(render(BackendUnavailable("connection refused"), lang)) == lang


def test_a_too_long_message_names_its_numbers_in_the_users_language() -> None:
    """It read "The message is too long (? characters; the limit is ?)" and only in English."""
    with pytest.raises(InputRejected) as info:
        validate_message("x" * (MAX_MESSAGE_CHARS + 5))
    for lang in ("en", "de", "th"):
        message = render(info.value, lang)
        assert str(MAX_MESSAGE_CHARS + 5) in message and str(MAX_MESSAGE_CHARS) in message, message
        assert "?" not in message
    assert render(info.value, "de").startswith("Die Nachricht ist zu lang")


def test_detail_is_appended_once_and_never_doubled() -> None:
    """A document error read "This file is not a PDF. (This file is not a PDF.)"."""
    assert str(DocumentError("not_pdf")) == "This file is not a PDF."
    html = DocumentError("not_pdf", "it is a web page (HTML) renamed to .pdf")
    assert str(html) == "This file is not a PDF. (it is a web page (HTML) renamed to .pdf)"
    assert render(html, "fr").startswith("Ce fichier n'est pas un PDF.")
    assert render(BackendError("HTTP 500"), "de").endswith("(HTTP 500)")
    overflow = ContextOverflow("too long", prompt_tokens=9000, context_window=8192)
    assert "9000 tokens needed" in render(overflow, "en")


def test_other_exceptions_render_too() -> None:
    assert render(NotFound("conversation not found"), "es") == text("errors.not_found", "es")
    assert render(RuntimeError("boom"), "ja") == "Something went wrong. (boom)"


def test_errors_of_lower_modules_render_with_their_values() -> None:
    with pytest.raises(LanguageRejected) as info:
        language_setting("klingon")
    assert render(info.value, "es").startswith("El idioma «klingon» no está disponible")


def test_regional_codes_fall_back_to_their_language() -> None:
    assert render(AppError("cancelled"), "pt-BR") == "Cancelado."
