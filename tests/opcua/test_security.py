"""Security: Basic256Sha256 Sign / SignAndEncrypt with certificates the gateway generates,
trust on the server side, pinned server certificates, user names and passwords."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from connectors.base import ConnectorError, Quality
from connectors.opcua import OpcUaConnector
from connectors.opcua.security import CERT_NAME, add_trusted, generate_identity
from connectors.simulators.cnc import SimSecurity, trust_folder
from tests.opcua.helpers import PlainServer, RecordingSink, device, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD_ENV = "SHOPFLOOR_TEST_OPCUA_PASSWORD"


def _server_cert(folder: Path, name: str) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [x509.UniformResourceIdentifier("urn:freeopcua:python:server"), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys are slow to make: once per module (server, an impostor, the trust folder)."""
    root = tmp_path_factory.mktemp("pki")
    cert, key = _server_cert(root, "server")
    other, _ = _server_cert(root, "impostor")
    trusted = root / "trusted"
    trusted.mkdir()
    # the gateway trusts this server (as `shopfloor opcua trust URL` does; see
    # test_security_policies.py for the refusal of an unknown server)
    add_trusted(
        x509.load_der_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER),
        root / "gateway-keys",
    )
    return {
        "root": root,
        "cert": cert,
        "key": key,
        "other": other,
        "trusted": trusted,
        "gateway": root / "gateway-keys",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(pki: dict[str, Path]) -> AsyncIterator[PlainServer]:
    sec = SimSecurity(
        certificate=pki["cert"],
        private_key=pki["key"],
        users={"operator": "s3cret"},
        allow_anonymous=False,
        trusted=pki["trusted"],
        only_secure=True,
    )
    srv = PlainServer(free_port(), sec)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _connector(server: PlainServer, pki: dict[str, Path], **conn: Any) -> OpcUaConnector:
    conn.setdefault("security_policy", "Basic256Sha256")
    conn.setdefault("security_mode", "SignAndEncrypt")
    conn.setdefault("username", "operator")
    conn.setdefault("password", {"env": PASSWORD_ENV})
    points = [{"id": "temp", "opcua": {"browse_path": "0:Objects/2:Plant/2:Temp"}}]
    site = site_of([device("m1", server.endpoint, points, publishing_interval_ms=50, **conn)])
    dev = site.devices[0]
    assert dev.opcua is not None
    return OpcUaConnector(dev.opcua, site.devices, pki["gateway"])


async def _reads(connector: OpcUaConnector) -> RecordingSink:
    sink = RecordingSink()
    async with running(connector, sink) as task:
        await sink.wait(lambda: bool(sink.of("m1", "temp")) or task.done(), what="a value")
        if task.done():
            task.result()
    return sink


async def test_untrusted_then_trusted_sign_and_encrypt(
    server: PlainServer, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    connector = _connector(server, pki)
    # first contact: the gateway generates its certificate; the server does not trust it yet
    with pytest.raises(ConnectorError, match=r"BadCertificateUntrusted|BadSecurityChecksFailed"):
        await connector.run(RecordingSink())
    generated = pki["gateway"] / CERT_NAME
    assert generated.is_file()
    assert (pki["gateway"] / "client-key.pem").stat().st_mode & 0o077 == 0
    # the administrator trusts it; the same connector (same certificate) now reads
    shutil.copy(generated, pki["trusted"] / "gateway.der")
    await trust_folder(server.server, pki["trusted"])
    before = generated.read_bytes()
    sink = await _reads(connector)
    assert sink.of("m1", "temp")[0].quality is Quality.GOOD
    assert generated.read_bytes() == before  # reused, not regenerated


async def test_sign_mode_with_a_pinned_server_certificate(
    server: PlainServer, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    generate_identity(pki["gateway"])
    shutil.copy(pki["gateway"] / CERT_NAME, pki["trusted"] / "gateway.der")
    await trust_folder(server.server, pki["trusted"])
    sink = await _reads(
        _connector(server, pki, security_mode="Sign", server_certificate=str(pki["cert"]))
    )
    assert sink.of("m1", "temp")


async def test_an_impostor_server_certificate_is_refused(
    server: PlainServer, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    generate_identity(pki["gateway"])
    shutil.copy(pki["gateway"] / CERT_NAME, pki["trusted"] / "gateway.der")
    await trust_folder(server.server, pki["trusted"])
    connector = _connector(server, pki, server_certificate=str(pki["other"]), timeout_s=1.0)
    with pytest.raises(ConnectorError, match="pinned server_certificate"):
        await connector.run(RecordingSink())


async def test_wrong_password_and_missing_secret(
    server: PlainServer, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_identity(pki["gateway"])
    shutil.copy(pki["gateway"] / CERT_NAME, pki["trusted"] / "gateway.der")
    await trust_folder(server.server, pki["trusted"])
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(ConnectorError, match="user name or password refused"):
        await _connector(server, pki).run(RecordingSink())
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(ConnectorError, match=f"password: environment variable {PASSWORD_ENV}"):
        await _connector(server, pki).run(RecordingSink())


async def test_a_given_certificate_without_uri_is_refused_before_connecting(
    server: PlainServer, pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    key = cert_gen.generate_private_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "no-uri")])
    import datetime as dt

    from cryptography.hazmat.primitives import hashes

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime.now(dt.UTC))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "c.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "k.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    connector = _connector(
        server, pki, certificate=str(tmp_path / "c.der"), private_key=str(tmp_path / "k.pem")
    )
    with pytest.raises(ConnectorError, match="no application URI"):
        await connector.run(RecordingSink())
    connector = _connector(server, pki, certificate=str(tmp_path / "c.der"))
    with pytest.raises(ConnectorError, match=r"needs opcua\.private_key"):
        await connector.run(RecordingSink())
