"""`govreg serve` beyond loopback: HTTPS with --tls-cert/--tls-key, or plain HTTP
only with --insecure-bind and a loud warning (refusals: tests/cli/test_hostile_input.py)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import start_server, stop


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "govreg test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _log(server: Any) -> str:
    return "\n".join(p.read_text() for p in server.home.path.glob("server-*.log"))


def test_tls_serves_https_on_every_address(sqlite_home: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    server = start_server(
        sqlite_home,
        args=("--host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key)),
        verify=context,
    )
    try:
        with server.client("admin") as admin:
            response = admin.get("/v1/principals")
        assert response.status_code == 200
        assert [p["name"] for p in response.json()] == ["admin"]
        assert response.headers["cache-control"] == "no-store"
        with pytest.raises(httpx.RemoteProtocolError):  # no plain HTTP on that port
            httpx.get(server.url.replace("https://", "http://") + "/v1/health", timeout=5)
        assert "WARNING" not in _log(server)
    finally:
        stop(server)


def test_insecure_bind_serves_plain_http_with_a_loud_warning(sqlite_home: Any) -> None:
    server = start_server(sqlite_home, args=("--host", "0.0.0.0", "--insecure-bind"))
    try:
        with server.client() as anonymous:
            assert anonymous.get("/v1/health").json() == {"status": "ok"}
    finally:
        stop(server)
    assert (
        "WARNING: serving plain HTTP on 0.0.0.0 (--insecure-bind): API keys and applicants' "
        "data cross the network in clear text unless a TLS proxy terminates every connection "
        "before it leaves this host's trusted network"
    ) in _log(server)
