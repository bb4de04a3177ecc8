"""OPC UA connector (asyncua): one connector per endpoint, serving every device on it.

``build(site)`` groups the site's OPC UA devices by endpoint. Certificates the gateway
generates are kept in ``<evidence.key_dir>/opcua/`` (beside the signing key).
"""

from __future__ import annotations

import logging

from config.models import Device, SiteConfig
from config.opcua import OpcUaConnection
from connectors.base import Connector
from connectors.opcua.connector import OpcUaConnector

log = logging.getLogger("shopfloor.opcua")

__all__ = ["OpcUaConnector", "build", "resolved_connection"]

_SESSION_FIELDS = (
    "security_policy",
    "security_mode",
    "certificate",
    "private_key",
    "server_certificate",
    "username",
    "password",
)


def resolved_connection(site: SiteConfig, conn: OpcUaConnection) -> OpcUaConnection:
    """The connection with its file paths made absolute (relative to the site file)."""
    update = {
        name: site.resolve(value)
        for name in ("certificate", "private_key", "server_certificate")
        if (value := getattr(conn, name)) is not None
    }
    return conn.model_copy(update=update) if update else conn


def build(site: SiteConfig) -> list[Connector]:
    groups: dict[str, list[Device]] = {}
    for d in site.devices:
        if d.opcua is not None:
            groups.setdefault(d.opcua.endpoint, []).append(d)
    pki_dir = site.resolve(site.evidence.key_dir) / "opcua"
    out: list[Connector] = []
    for endpoint, devices in groups.items():
        first = devices[0].opcua
        assert first is not None
        for other in devices[1:]:
            assert other.opcua is not None
            differ = [f for f in _SESSION_FIELDS if getattr(other.opcua, f) != getattr(first, f)]
            if differ:
                raise ValueError(
                    f"devices {devices[0].id} and {other.id} share {endpoint} but differ in "
                    f"{', '.join(differ)}: one session serves one endpoint"
                )
        out.append(OpcUaConnector(resolved_connection(site, first), devices, pki_dir))
    return out
