"""/summarize checks its language like the CLI's --lang, and takes the password of an encrypted PDF.

Through the real server with gradio_client, and the real demo model for the summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.ui.conftest import Served
from tests.ui.test_cli import cli


@pytest.fixture
def client(served_local: Served) -> Iterator[Client]:
    c = Client(served_local.url, verbose=False)
    yield c
    c.close()


def test_an_unknown_language_is_refused_as_the_cli_refuses_it(client: Client, tmp_path: Path) -> None:
    from tests.pdfs import long_pdf

    pdf = long_pdf(tmp_path / "r.pdf", 2)
    with pytest.raises(Exception, match="unsupported language 'klingon'"):
        client.predict(handle_file(str(pdf)), "klingon", api_name="/summarize")
    result = cli("summarize", str(pdf), "--lang", "klingon", db=f"sqlite:///{tmp_path / 'cli.db'}")
    assert result.returncode == 2 and "unsupported language 'klingon'" in result.stderr


def test_an_encrypted_pdf_is_summarized_with_its_password(client: Client, tmp_path: Path) -> None:
    from tests.pdfs import encrypted_pdf

    pdf = handle_file(str(encrypted_pdf(tmp_path / "secret.pdf", "s3cret")))
    with pytest.raises(Exception, match=r"(?i)password"):
        client.predict(pdf, "en", api_name="/summarize")
    with pytest.raises(Exception, match=r"(?i)password"):
        client.predict(pdf, "en", "wrong", api_name="/summarize")
    summary = client.predict(pdf, "en", "s3cret", api_name="/summarize")
    assert isinstance(summary, str) and summary.strip()
