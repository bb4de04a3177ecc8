"""Opening an OPC UA session (security, user), the server's OperationLimits, node resolution."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from asyncua import Client, ua
from asyncua.client.ua_client import UASocketProtocol
from asyncua.crypto import security_policies

from config.base import SecretError
from config.markers import AUTH_FAILED
from config.opcua import OpcUaConnection
from connectors.base import ConnectorError
from connectors.opcua.logs import quiet_asyncua
from connectors.opcua.security import (
    CertificateError,
    ClientIdentity,
    check_server_trusted,
    generate_identity,
    given_identity,
)

log = logging.getLogger("shopfloor.opcua")

T = TypeVar("T")

#: the site file's security_policy -> asyncua's policy class (all four are in asyncua 1.1)
POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}

# ns=0 node ids of Server/ServerCapabilities/OperationLimits
_LIMIT_NODES = {
    "max_nodes_per_read": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "max_monitored_items_per_call": (
        ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
    ),
    "max_nodes_per_translate": (
        ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds
    ),
    "max_nodes_per_history_read": (
        ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData
    ),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's OperationLimits; 0 means the server sets no limit."""

    max_nodes_per_read: int = 0
    max_monitored_items_per_call: int = 0
    max_nodes_per_translate: int = 0
    max_nodes_per_history_read: int = 0


def chunks(items: Sequence[T], limit: int) -> Iterator[Sequence[T]]:
    """Slices of at most ``limit`` items (all at once when ``limit`` is 0)."""
    if limit <= 0:
        limit = max(1, len(items))
    for i in range(0, len(items), limit):
        yield items[i : i + limit]


def make_client(conn: OpcUaConnection) -> Client:
    client = Client(conn.endpoint, timeout=conn.timeout_s, watchdog_intervall=1.0)
    client.name = client.description = "shopfloor gateway"
    client.product_uri = "urn:shopfloor"
    # the server forgets our session soon after we vanish (default would be one hour)
    client.session_timeout = int(max(30.0, 3 * conn.watchdog_s) * 1000)
    quiet_asyncua()  # after Client(): its per-instance loggers exist now
    return client


async def configure(
    client: Client, conn: OpcUaConnection, pki_dir: Path | None
) -> ClientIdentity | None:
    """Security and user identity of ``client`` as the connection asks; before connect()."""
    identity: ClientIdentity | None = None
    if conn.security_policy != "None":
        try:
            if conn.certificate is not None:
                identity = given_identity(conn.certificate, conn.private_key)
            else:
                if pki_dir is None:
                    raise CertificateError("no folder to keep the generated client certificate")
                identity = generate_identity(pki_dir)
        except CertificateError as exc:
            raise ConnectorError(f"{conn.endpoint}: {exc}") from None
        client.application_uri = identity.application_uri
        mode = getattr(ua.MessageSecurityMode, conn.security_mode)
        server_cert = str(conn.server_certificate) if conn.server_certificate else None
        await client.set_security(
            POLICIES[conn.security_policy],
            str(identity.certificate),
            str(identity.private_key),
            server_certificate=server_cert,
            mode=mode,
        )
        if server_cert is None:
            # the certificate of the server's endpoint list, with which the secure channel is
            # opened: it must be in the gateway's trust list (``shopfloor opcua trust URL``)
            der = getattr(client.security_policy, "peer_certificate", None)
            try:
                if not isinstance(der, bytes):
                    raise CertificateError("the server presented no certificate")
                check_server_trusted(der, pki_dir, conn.endpoint)
            except CertificateError as exc:
                raise ConnectorError(f"{conn.endpoint}: {exc}") from None
    if conn.username is not None and conn.password is not None:
        try:
            password = conn.password.reveal()
        except SecretError as exc:
            raise ConnectorError(f"{conn.endpoint}: password: {exc}") from None
        client.set_user(conn.username)
        client.set_password(password)
    return identity


#: the status codes of a server refusing the user's credentials
AUTH_REFUSED = frozenset(
    {
        ua.StatusCodes.BadUserAccessDenied,
        ua.StatusCodes.BadIdentityTokenInvalid,
        ua.StatusCodes.BadIdentityTokenRejected,
    }
)


class AuthenticationError(ConnectorError):
    """The server refused the gateway's user name or password: not a lost link (the
    supervisor counts it as ``auth_failed``, writes ``auth_failed`` markers once and retries
    slowly)."""

    kind = AUTH_FAILED


def is_auth_refusal(exc: BaseException) -> bool:
    return isinstance(exc, ua.UaStatusCodeError) and exc.code in AUTH_REFUSED


def explain(exc: BaseException, endpoint: str, pinned: bool = False) -> str:
    """A plant engineer's reading of a connection failure (``pinned``: a server certificate
    is pinned, so a silent server may be one that cannot decrypt what we sent)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ua.UaStatusCodeError):
        code = exc.code
        name = ua.StatusCode(code).name
        hints = {
            ua.StatusCodes.BadUserAccessDenied: "user name or password refused",
            ua.StatusCodes.BadIdentityTokenInvalid: "user name or password refused",
            ua.StatusCodes.BadIdentityTokenRejected: "user name or password refused",
            ua.StatusCodes.BadCertificateUntrusted: (
                "the server does not trust the gateway's certificate: copy client-cert.der into "
                "the server's trusted folder"
            ),
            ua.StatusCodes.BadSecurityChecksFailed: (
                "security checks failed: certificate not trusted, or server certificate mismatch"
            ),
            ua.StatusCodes.BadSecurityPolicyRejected: "the server does not offer this policy",
            ua.StatusCodes.BadCertificateInvalid: "certificate refused as invalid",
        }
        hint = hints.get(code)
        return f"{endpoint}: {name}" + (f" ({hint})" if hint else "")
    if isinstance(exc, TimeoutError):
        if pinned:
            return (
                f"{endpoint}: no answer within the timeout while opening the secure channel: "
                "is the pinned server_certificate the server's certificate?"
            )
        return f"{endpoint}: no answer within the timeout"
    if isinstance(exc, ConnectionError | OSError):
        return f"{endpoint}: connection failed: {text}"
    return f"{endpoint}: {type(exc).__name__}: {text}"


async def read_limits(client: Client) -> Limits:
    """Read the OperationLimits one node per request (a request must itself fit the limits)."""
    values: dict[str, int] = {}
    for field, node_id in _LIMIT_NODES.items():
        result = await client.uaclient.read_attributes([ua.NodeId(node_id)], ua.AttributeIds.Value)
        dv = result[0]
        value = dv.Value.Value if dv.Value is not None else None
        if dv.StatusCode is not None and dv.StatusCode.is_good() and isinstance(value, int):
            values[field] = max(0, int(value))
    return Limits(**values)


def parse_browse_path(path: str) -> tuple[ua.NodeId, str]:
    """``0:Objects/2:cnc1/2:State`` -> (RootFolder, ``/0:Objects/2:cnc1/2:State``); a path not
    starting at ``0:Objects`` is taken relative to the Objects folder."""
    parts = [p for p in path.strip().strip("/").split("/") if p]
    if not parts:
        raise ValueError(f"empty browse path {path!r}")
    if parts[0] in ("0:Objects", "Objects"):
        start = ua.NodeId(ua.ObjectIds.RootFolder)
        parts[0] = "0:Objects"
    else:
        start = ua.NodeId(ua.ObjectIds.ObjectsFolder)
    return start, "/" + "/".join(parts)


async def translate(
    client: Client, paths: Sequence[str], limit: int
) -> list[ua.NodeId | ua.StatusCode]:
    """Resolve browse paths (TranslateBrowsePathsToNodeIds, batched to the server's limit)."""
    requests: list[ua.BrowsePath | ua.StatusCode] = []
    for path in paths:
        try:
            start, rel = parse_browse_path(path)
            bp = ua.BrowsePath()
            bp.StartingNode = start
            bp.RelativePath = ua.RelativePath.from_string(rel)
            requests.append(bp)
        except (ValueError, ua.UaStringParsingError):
            requests.append(ua.StatusCode(ua.StatusCodes.BadBrowseNameInvalid))
    out: list[ua.NodeId | ua.StatusCode] = [
        r if isinstance(r, ua.StatusCode) else ua.StatusCode(0) for r in requests
    ]
    todo = [(i, r) for i, r in enumerate(requests) if isinstance(r, ua.BrowsePath)]
    for part in chunks(todo, limit):
        results = await client.uaclient.translate_browsepaths_to_nodeids([r for _, r in part])
        for (i, _), res in zip(part, results, strict=True):
            if res.StatusCode.is_good() and res.Targets:
                target = res.Targets[0].TargetId
                out[i] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
            elif res.StatusCode.is_good():
                out[i] = ua.StatusCode(ua.StatusCodes.BadNoMatch)
            else:
                out[i] = res.StatusCode
    return out


def socket_closed(client: Client) -> bool:
    """Whether the server closed the client's connection (the socket is gone; asyncua notices
    only when its next request fails)."""
    protocol = client.uaclient.protocol
    return protocol is None or protocol.state == UASocketProtocol.CLOSED


async def close_client(client: Client) -> None:
    """Close the session if the server still answers, else just the socket (never raises)."""
    try:
        # asyncio.timeout, not wait_for (3.11's wait_for can swallow a cancellation)
        async with asyncio.timeout(2.0):
            await client.disconnect()
    except (Exception, TimeoutError):
        client.disconnect_socket()
