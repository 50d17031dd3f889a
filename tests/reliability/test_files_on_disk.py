"""What llamadesk leaves on disk: private folders and files, uploads that go away, quotas, TLS."""

from __future__ import annotations

import datetime
import os
import ssl
import stat
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.documents import extract_pdf
from tests.pdfs import text_pdf
from tests.reliability.conftest import (
    REPO_ROOT,
    START_TIMEOUT_S,
    cli_command,
    cli_env,
    free_port,
    record_figure,
    stop_process,
    wait_until,
)
from tests.reliability.security_helpers import login, security_server, upload
from ui.handlers import write_markdown

REPORT = ["A short report about rivers and bridges. " * 20]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_data_directory_and_database_are_private(tmp_path: Path) -> None:
    """The default data directory is 0700 and the database 0600, under a permissive umask."""
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("LLAMADESK_DB", None)
    old = os.umask(0o022)
    try:
        done = subprocess.run(
            cli_command("users", "add", "dora"), input="dora-password-1\n", env=env, text=True,
            capture_output=True, timeout=120,
        )  # fmt: skip
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "data" / "llamadesk"
    files = [p for p in folder.iterdir() if p.name.startswith("llamadesk.db")]
    assert _mode(folder) == 0o700, oct(_mode(folder))
    assert files and all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "llamadesk.db"
    db.parent.mkdir()
    db.touch(mode=0o644)
    db.chmod(0o644)
    done = subprocess.run(
        cli_command("users", "list", "--db", f"sqlite:///{db}"),
        env=cli_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _mode(db) == 0o600


def test_a_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    """Summary downloads: a link planted where the old fixed /tmp folder put them is left alone."""
    doc = extract_pdf(text_pdf(tmp_path / "report.pdf", REPORT), filename="report.pdf")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    planted = Path(tempfile.gettempdir()) / "llamadesk-summaries"
    planted.mkdir(exist_ok=True)
    trap = planted / f"report-{doc.sha256[:8]}-summary.md"
    trap.unlink(missing_ok=True)
    trap.symlink_to(victim)
    try:
        written = Path(write_markdown(7, doc, "the summary"))
    finally:
        trap.unlink()
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert written.read_text(encoding="utf-8").endswith("the summary\n")
    assert _mode(written) == 0o600 and _mode(written.parent) == 0o700
    assert written.parent.parent.name == "7" and _mode(written.parent.parent) == 0o700
    # A second summary of the same document gets a fresh, unpredictable folder.
    assert Path(write_markdown(7, doc, "again")).parent != written.parent


def test_uploads_are_private_quota_bound_and_expire(tmp_path: Path) -> None:
    options = {"upload_quota": 300_000, "cache_lifetime_s": 2, "cache_sweep_s": 1}
    with security_server(tmp_path, options=options) as server:
        alice, bob = login(server.url, "alice"), login(server.url, "bob")
        big = tmp_path / "big.pdf"
        big.write_bytes(b"%PDF-1.4\n" + os.urandom(200_000))
        path = Path(upload(alice, big))
        # The upload lives in a private per-process folder, not in a shared /tmp/gradio.
        assert not str(path).startswith("/tmp/gradio")
        private = next(p for p in path.parents if p.name.startswith("llamadesk-"))
        assert _mode(private) == 0o700

        # A second upload would pass alice's quota; bob's own quota is untouched.
        with big.open("rb") as fh:
            over = alice.post("gradio_api/upload", files={"files": ("again.pdf", fh, "application/pdf")})
        assert over.status_code == 413, over.text
        assert upload(bob, big)

        # Gradio's cache lifetime removes the upload once it is older than the lifetime.
        wait_until(lambda: not path.exists(), 60, "the upload to expire from Gradio's cache")
        assert upload(alice, text_pdf(tmp_path / "small.pdf", REPORT))
    record_figure("uploads", {"quota_refusals": 1, "expired": 1})


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_serve_speaks_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    db = f"sqlite:///{tmp_path / 'tls.db'}"
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cli_command(
                "serve",
                "--port",
                str(port),
                "--db",
                db,
                "--ssl-certfile",
                str(cert),
                "--ssl-keyfile",
                str(key),
            ),
            cwd=REPO_ROOT,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}/"
    trust = ssl.create_default_context(cafile=str(cert))

    def up() -> bool:
        assert proc.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        try:
            return httpx.get(url, verify=trust, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, START_TIMEOUT_S, "llamadesk serve over TLS", 0.25)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        stop_process(proc)
