"""Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss against a real asyncua server; the server
certificate checked against the gateway's trust list by default; ``shopfloor opcua trust URL``;
asyncua's INFO chatter and tracebacks kept out of the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Server, ua
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors.base import ConnectorError, Quality
from connectors.opcua import OpcUaConnector
from connectors.opcua.security import TRUST_DIR, generate_identity, thumbprint
from connectors.simulators.cnc import SimSecurity, apply_security, new_server, trust_folder
from edge.cli.main import main as cli_main
from tests.opcua.helpers import RecordingSink, device, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

URI = "urn:test:plc"
NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # certificates valid from here, for ten years


def _make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """An application instance certificate made with ``cryptography`` (RSA 2048, SHA-256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(URI), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    cert, key = _make_cert(root, "plc")
    other, _ = _make_cert(root, "impostor")
    trusted = root / "server-trusts"
    trusted.mkdir()
    keys = root / "keys"
    # the gateway's own certificate, trusted by the server (the server side is not the topic)
    ident = generate_identity(keys / "opcua")
    shutil.copy(ident.certificate, trusted / "gateway.der")
    return {"cert": cert, "key": key, "other": other, "trusted": trusted, "keys": keys}


AES = [
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
]


class AesServer:
    """An asyncua server offering only the two AES policies, trusting the gateway's
    certificate, with one variable ns=2;s=Temp."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{free_port()}/aes"
        self.pki = pki
        self.server: Server = new_server()

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        s.set_server_name("AES test PLC")
        await s.set_application_uri(URI)
        await apply_security(s, SimSecurity(only_secure=True))
        await s.load_certificate(str(self.pki["cert"]))
        await s.load_private_key(str(self.pki["key"]))
        s.set_security_policy(AES)
        await trust_folder(s, self.pki["trusted"])
        idx = await s.register_namespace("urn:test")
        await s.nodes.objects.add_variable(
            ua.NodeId("Temp", idx), ua.QualifiedName("Temp", idx), ua.Variant(21.5)
        )
        await s.start()

    async def stop(self) -> None:
        from tests.opcua.helpers import release_standard_nodes

        try:
            await self.server.stop()
        finally:
            release_standard_nodes()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(pki: dict[str, Path]) -> AsyncIterator[AesServer]:
    srv = AesServer(pki)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _connector(server: AesServer, pki: dict[str, Path], **conn: Any) -> OpcUaConnector:
    conn.setdefault("security_policy", "Aes256_Sha256_RsaPss")
    conn.setdefault("security_mode", "SignAndEncrypt")
    points = [{"id": "temp", "opcua": {"node_id": "ns=2;s=Temp"}}]
    site = site_of([device("m1", server.endpoint, points, publishing_interval_ms=50, **conn)])
    dev = site.devices[0]
    assert dev.opcua is not None
    return OpcUaConnector(dev.opcua, site.devices, pki["keys"] / "opcua")


async def _first_value(connector: OpcUaConnector) -> float:
    sink = RecordingSink()
    async with running(connector, sink) as task:
        await sink.wait(lambda: bool(sink.of("m1", "temp")) or task.done(), what="a value")
        if task.done():
            task.result()
    sample = sink.of("m1", "temp")[0]
    assert sample.quality is Quality.GOOD
    return sample.value


async def _cli(args: list[str]) -> int:
    """The command line in a thread of its own (it runs its own event loop)."""
    return await asyncio.to_thread(cli_main, args)


def _trust_dir(pki: dict[str, Path]) -> Path:
    return pki["keys"] / "opcua" / TRUST_DIR


async def test_an_unknown_server_certificate_is_refused_by_default(
    server: AesServer, pki: dict[str, Path]
) -> None:
    shutil.rmtree(_trust_dir(pki), ignore_errors=True)
    with pytest.raises(ConnectorError) as info:
        await _connector(server, pki).run(RecordingSink())
    text = str(info.value)
    der = pki["cert"].read_bytes()
    assert f"server certificate {thumbprint(der)} is not in the trust list" in text
    assert f"shopfloor opcua trust {server.endpoint}" in text


async def test_trust_command_checks_the_expected_fingerprint(
    server: AesServer, pki: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(_trust_dir(pki), ignore_errors=True)
    keys = str(pki["keys"])
    wrong = "00" * 20
    assert (
        await _cli(["opcua", "trust", server.endpoint, "--key-dir", keys, "--expect", wrong]) == 1
    )
    assert "nothing trusted" in capsys.readouterr().err
    assert not _trust_dir(pki).exists()
    # the engineer reads the fingerprint on the PLC's certificate page and passes it
    der = pki["cert"].read_bytes()
    sha256 = x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()
    args = ["opcua", "trust", server.endpoint, "--key-dir", keys, "--expect", sha256.upper()]
    assert await _cli(args) == 0
    out = capsys.readouterr().out
    assert "trusted: CN=plc" in out
    assert f"SHA-1 thumbprint {thumbprint(der)}" in out
    assert "Aes256_Sha256_RsaPss-SignAndEncrypt" in out
    assert "Aes128_Sha256_RsaOaep-Sign" in out
    assert (_trust_dir(pki) / f"{thumbprint(der)}.der").read_bytes() == der
    assert await _cli(["opcua", "trust", server.endpoint, "--key-dir", keys]) == 0
    assert "already trusted: CN=plc" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        ("Aes128_Sha256_RsaOaep", "Sign"),
        ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
        ("Aes256_Sha256_RsaPss", "Sign"),
        ("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
    ],
)
async def test_aes_policies_read_once_trusted(
    server: AesServer, pki: dict[str, Path], policy: str, mode: str
) -> None:
    assert await _cli(["opcua", "trust", server.endpoint, "--key-dir", str(pki["keys"])]) == 0
    connector = _connector(server, pki, security_policy=policy, security_mode=mode)
    assert await _first_value(connector) == 21.5


async def test_a_policy_the_server_does_not_offer(server: AesServer, pki: dict[str, Path]) -> None:
    connector = _connector(server, pki, security_policy="Basic256Sha256", timeout_s=1.0)
    with pytest.raises(ConnectorError, match=server.endpoint):
        await connector.run(RecordingSink())


async def test_a_trust_list_of_another_server_refuses_this_one(
    server: AesServer, pki: dict[str, Path]
) -> None:
    shutil.rmtree(_trust_dir(pki), ignore_errors=True)
    _trust_dir(pki).mkdir(parents=True)
    shutil.copy(pki["other"], _trust_dir(pki) / "impostor.der")
    with pytest.raises(ConnectorError, match="is not in the trust list"):
        await _connector(server, pki).run(RecordingSink())


async def test_browse_uses_the_trust_list(
    server: AesServer, pki: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(_trust_dir(pki), ignore_errors=True)
    args = ["browse", "opcua", server.endpoint, "--key-dir", str(pki["keys"])]
    args += ["--security", "Aes128_Sha256_RsaOaep-SignAndEncrypt", "--depth", "1"]
    assert await _cli(args) == 1
    assert "is not in the trust list" in capsys.readouterr().err
    assert await _cli(["opcua", "trust", server.endpoint, "--key-dir", str(pki["keys"])]) == 0
    capsys.readouterr()
    assert await _cli(args) == 0
    assert "ns=2;s=Temp" in capsys.readouterr().out


async def test_asyncua_info_and_tracebacks_stay_out_of_the_info_log(
    server: AesServer, pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    assert await _cli(["opcua", "trust", server.endpoint, "--key-dir", str(pki["keys"])]) == 0
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            await _first_value(_connector(server, pki))
            try:
                raise ConnectionResetError("peer closed")
            except ConnectionResetError:
                logging.getLogger("asyncua.client.client").exception("Error in watchdog loop")
    finally:
        root.setLevel(old)
    mine = [r for r in caplog.records if r.name.startswith("asyncua")]
    assert all(r.levelno >= logging.WARNING for r in mine)
    assert not any("find_endpoint" in r.getMessage() for r in caplog.records)
    [watchdog] = [r for r in mine if "watchdog" in r.getMessage()]
    assert watchdog.getMessage() == "Error in watchdog loop (ConnectionResetError: peer closed)"
    assert watchdog.exc_info is None
    # at DEBUG everything passes, traceback included
    root.setLevel(logging.DEBUG)
    try:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            try:
                raise ConnectionResetError("peer closed")
            except ConnectionResetError:
                logging.getLogger("asyncua.client.client").exception("Error in watchdog loop")
    finally:
        root.setLevel(old)
    [debug] = [r for r in caplog.records if r.name.startswith("asyncua")]
    assert debug.exc_info is not None


async def test_trust_needs_a_key_folder_and_a_secure_endpoint(
    pki: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.opcua.helpers import PlainServer

    plain = PlainServer(free_port())  # NoSecurity only
    await plain.start()
    try:
        assert await _cli(["opcua", "trust", plain.endpoint]) == 2
        assert "give the site file (-c SITE) or the key folder" in capsys.readouterr().err
        assert await _cli(["opcua", "trust", plain.endpoint, "--key-dir", str(pki["keys"])]) == 1
        assert "offers no secure endpoint" in capsys.readouterr().err
    finally:
        await plain.stop()
