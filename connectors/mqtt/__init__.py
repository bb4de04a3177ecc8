"""MQTT connector (paho-mqtt 2.x): ``build(site)`` gives one connector per broker connection.

Devices whose ``mqtt`` blocks name the same broker connection (host, port, client id,
credentials, TLS, session and reconnect settings) share one connection; per device remain the
QoS, the payload size limit and the topic level that names the device.
"""

from __future__ import annotations

import json

from config.models import Device, SiteConfig
from config.mqtt import MqttConnection
from connectors.base import Connector
from connectors.mqtt.connector import MqttConnector, Route, routes_of
from connectors.mqtt.payload import SpecError
from connectors.mqtt.topics import TopicError

__all__ = ["MqttConnector", "Route", "build", "connection_key", "routes_of"]

_PER_DEVICE = {"qos", "max_payload_bytes", "topic_device_level", "timezone"}


def connection_key(conn: MqttConnection) -> str:
    """Identity of a broker connection (settings that must agree to share one)."""
    return json.dumps(conn.model_dump(mode="json", exclude=_PER_DEVICE), sort_keys=True)


def default_client_id(site: SiteConfig, first: Device) -> str:
    """A fixed client id (a persistent session needs one): ``shopfloor-<site>-<device>``."""
    return f"shopfloor-{site.site.id}-{first.id}"[:64]


def build(site: SiteConfig) -> list[Connector]:
    groups: dict[str, list[Device]] = {}
    for dev in site.devices:
        if dev.mqtt is not None:
            groups.setdefault(connection_key(dev.mqtt), []).append(dev)
    out: list[Connector] = []
    seen_ids: dict[tuple[str, int, str], str] = {}
    for devices in groups.values():
        conn = devices[0].mqtt
        assert conn is not None
        client_id = conn.client_id or default_client_id(site, devices[0])
        where = (conn.host, conn.port, client_id)
        if where in seen_ids:
            raise ValueError(
                f"devices {seen_ids[where]} and {devices[0].id}: same MQTT client id "
                f"{client_id!r} on {conn.host}:{conn.port} with different connection settings "
                "(the broker would drop one for the other); make the mqtt blocks agree or "
                "give distinct client_id"
            )
        seen_ids[where] = devices[0].id
        try:
            out.append(
                MqttConnector(
                    conn,
                    devices,
                    client_id=client_id,
                    resolve=site.resolve,
                    site_timezone=site.site.timezone,
                )
            )
        except (TopicError, SpecError) as exc:
            raise ValueError(str(exc)) from None
    return out
