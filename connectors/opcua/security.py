"""Client certificates of the gateway for Basic256Sha256 Sign / SignAndEncrypt.

When the site file gives no certificate, the gateway generates a self-signed application
instance certificate (RSA 2048, SHA-256, valid one year, SAN = application URI + host name)
once, into a folder it keeps (``<key_dir>/opcua/``), and reuses it on every start, so that the
server's administrator trusts it once. Copy ``client-cert.der`` into the server's trusted
folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger("shopfloor.opcua.security")

APP_URI_PREFIX = "urn:shopfloor:gateway"
CERT_NAME = "client-cert.der"
KEY_NAME = "client-key.pem"


class CertificateError(ValueError):
    """A given certificate or key cannot be used (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    certificate: Path
    private_key: Path
    application_uri: str


def default_application_uri(hostname: str | None = None) -> str:
    return f"{APP_URI_PREFIX}:{hostname or socket.gethostname()}"


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror}") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{path} is not a DER or PEM X.509 certificate") from None


def application_uri_of(path: Path) -> str | None:
    """The URI in the certificate's subjectAltName (what the client must announce)."""
    cert = _load_cert(path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def generate_identity(folder: Path, application_uri: str | None = None) -> ClientIdentity:
    """Create (or reuse) the gateway's certificate and key in ``folder`` (mode 0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(folder, 0o700)
    except OSError:
        log.warning("cannot restrict the permissions of %s", folder)
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    hostname = socket.gethostname()
    uri = application_uri or default_application_uri(hostname)
    if cert_path.is_file() and key_path.is_file():
        cert = _load_cert(cert_path)
        if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7):
            existing = application_uri_of(cert_path)
            return ClientIdentity(cert_path, key_path, existing or uri)
        log.warning("client certificate %s expires soon; generating a new one", cert_path)
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"shopfloor gateway@{hostname}",
        {"organizationName": "shopfloor"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(hostname)],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=365,
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert_gen.dump_private_key_as_pem(key))
    tmp_key.replace(key_path)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    log.info("generated OPC UA client certificate %s (%s)", cert_path, uri)
    return ClientIdentity(cert_path, key_path, uri)


def given_identity(certificate: Path, private_key: Path | None) -> ClientIdentity:
    """The certificate and key named in the site file, checked before any connection."""
    if private_key is None:
        raise CertificateError("opcua.certificate needs opcua.private_key")
    if not private_key.is_file():
        raise CertificateError(f"private key {private_key} not found")
    uri = application_uri_of(certificate)
    if uri is None:
        raise CertificateError(
            f"{certificate} has no application URI in its subjectAltName (required by OPC UA)"
        )
    return ClientIdentity(certificate, private_key, uri)


def thumbprint(der: bytes) -> str:
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA1())  # the OPC UA thumbprint is SHA-1 by definition
    digest.update(der)
    return digest.finalize().hex()


TRUST_DIR = "trusted-servers"
"""Below ``<key_dir>/opcua/``: the server certificates the gateway trusts (one DER file each,
named by thumbprint), written by ``shopfloor opcua trust URL``."""


class UntrustedServerError(CertificateError):
    """The server presented a certificate that is not in the gateway's trust list."""


def trust_dir(pki_dir: Path) -> Path:
    return pki_dir / TRUST_DIR


def _der_of(path: Path) -> bytes | None:
    try:
        return _load_cert(path).public_bytes(serialization.Encoding.DER)
    except CertificateError:
        return None


def is_trusted(der: bytes, folder: Path) -> bool:
    """``der`` is, byte for byte, one of the certificates in ``folder`` (DER or PEM files)."""
    if not folder.is_dir():
        return False
    return any(p.is_file() and _der_of(p) == der for p in sorted(folder.iterdir()))


def check_server_trusted(der: bytes, pki_dir: Path | None, endpoint: str) -> None:
    """Refuse a server certificate that is not in the trust list (the message says how to
    inspect and trust it)."""
    folder = trust_dir(pki_dir) if pki_dir is not None else None
    if folder is not None and is_trusted(der, folder):
        return
    where = f"the trust list {folder}" if folder is not None else "a trust list"
    raise UntrustedServerError(
        f"server certificate {thumbprint(der)} is not in {where}: compare it with the "
        f"server's, then run `shopfloor opcua trust {endpoint} -c SITE` (or pin the file "
        "with opcua.server_certificate)"
    )


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    der: bytes
    subject: str
    application_uri: str | None
    not_after: dt.datetime
    thumbprint: str  # SHA-1, as OPC UA tools show it
    sha256: str


def describe(der: bytes) -> ServerCertificate:
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    return ServerCertificate(
        der=der,
        subject=cert.subject.rfc4514_string(),
        application_uri=uris[0] if uris else None,
        not_after=cert.not_valid_after_utc,
        thumbprint=thumbprint(der),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def add_trusted(der: bytes, pki_dir: Path) -> Path:
    """Write ``der`` into the trust list (idempotent); the file's path."""
    folder = trust_dir(pki_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{thumbprint(der)}.der"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(der)
    tmp.replace(path)
    return path
