"""Credentials and TLS against a private influxd with auth-enabled and HTTPS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.base import SecretError
from edge.store.influx.errors import InfluxAuthError, InfluxError, InfluxUnavailable
from edge.store.influx.store import InfluxStore
from tests.influx.helpers import YEAR_2021, batch, drained, storage, wait_for
from tests.support.influxd import Influxd, influxd_available, influxd_server

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]

PASSWORD = "s3cret-pw"


def _make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shopfloor test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Influxd, Path]]:
    root = tmp_path_factory.mktemp("influxd-secure")
    ca_file, cert, key = _make_tls(root)
    with influxd_server(root / "server", auth=True, cert=cert, key=key) as server:
        server.create_admin("admin", PASSWORD)
        server.create_database("plant")
        yield server, ca_file


def test_wrong_password_is_a_clear_auth_error_and_rows_are_kept(
    secure: tuple[Influxd, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = secure
    monkeypatch.setenv("INFLUX_PW", "wrong")
    cfg = storage(
        server.url, "plant", tmp_path, username="admin", password={"env": "INFLUX_PW"}, ca_file=ca
    )
    with InfluxStore(cfg) as store:
        store.write_batches([batch("auth", 1, 10)])
        wait_for(lambda: store.status().state == "auth_error", what="auth_error state")
        st = store.status()
        assert st.last_status == 401
        assert "refused the credentials (401)" in st.last_error
        assert "authorization failed" in st.last_error
        assert PASSWORD not in st.last_error
        assert "wrong" not in st.last_error
        assert st.pending_samples == 10
        assert st.quarantined_batches == 0
        assert st.errors["auth"] >= 1
        with pytest.raises(InfluxAuthError, match=r"refused the credentials \(401\)"):
            store.read("auth", "p", 0, 10)
    # the next run with the right password sends what the outbox kept
    monkeypatch.setenv("INFLUX_PW", PASSWORD)
    with InfluxStore(cfg) as store:
        drained(store)
        assert len(store.read("auth", "p", YEAR_2021, YEAR_2021 + 10**9)) == 10


def test_missing_secret_is_a_clear_error(secure: tuple[Influxd, Path], tmp_path: Path) -> None:
    server, ca = secure
    cfg = storage(
        server.url,
        "plant",
        tmp_path,
        username="admin",
        password={"env": "SHOPFLOOR_NO_SUCH_VAR"},
        ca_file=ca,
    )
    with pytest.raises(SecretError, match="SHOPFLOOR_NO_SUCH_VAR is not set"):
        InfluxStore(cfg)
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    cfg = storage(
        server.url, "plant", tmp_path, username="admin", password={"file": secret}, ca_file=ca
    )
    with InfluxStore(cfg) as store:  # from a file (trailing newline stripped)
        store.write_batches([batch("file", 1, 3)])
        drained(store)


def test_tls_needs_the_ca(secure: tuple[Influxd, Path], tmp_path: Path) -> None:
    server, ca = secure
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    common = {"username": "admin", "password": {"file": secret}}
    with (
        InfluxStore(storage(server.url, "plant", tmp_path, **common)) as store,
        pytest.raises(InfluxUnavailable, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        store.read("x", "p", 0, 10)
    insecure = storage(server.url, "plant", tmp_path, verify_tls=False, **common)
    with InfluxStore(insecure) as store:
        assert len(store.read("x", "p", 0, 10)) == 0
    with InfluxStore(storage(server.url, "plant", tmp_path, ca_file=ca, **common)) as store:
        store.write_batches([batch("tls", 1, 5)])
        drained(store)
        assert len(store.read("tls", "p", YEAR_2021, YEAR_2021 + 10**9)) == 5


def test_unreadable_ca_file(secure: tuple[Influxd, Path], tmp_path: Path) -> None:
    server, _ = secure
    with pytest.raises(InfluxError, match="cannot load the CA file"):
        InfluxStore(storage(server.url, "plant", tmp_path, ca_file=tmp_path / "missing.pem"))


def test_a_write_only_user_cannot_check_the_retention(
    secure: tuple[Influxd, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, ca = secure
    server.query("CREATE USER \"writer\" WITH PASSWORD 'w-pass'")
    server.query('GRANT WRITE ON "plant" TO "writer"')
    monkeypatch.setenv("INFLUX_W", "w-pass")
    common: dict[str, Any] = {"username": "writer", "password": {"env": "INFLUX_W"}, "ca_file": ca}
    cfg = storage(server.url, "plant", tmp_path, retention={"duration": "400d"}, **common)
    with caplog.at_level(logging.INFO, "shopfloor.influx"), InfluxStore(cfg, site="p") as store:
        store.write_batches([batch("wo", 1, 4)])
        drained(store)  # writing goes on
        assert store.retention_check is not None
        assert store.retention_check.outcome == "unchecked"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("influx: cannot check the retention: InfluxDB refused")
    strict = storage(
        server.url,
        "plant",
        tmp_path / "strict",
        retention={"duration": "400d", "strict": True},
        **common,
    )
    with InfluxStore(strict, site="p") as store:
        store.write_batches([batch("wo", 2, 4)])
        wait_for(lambda: store.status().state == "retention_mismatch", what="strict state")
        assert store.status().pending_samples == 4
