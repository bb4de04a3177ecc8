"""Sparkplug B host application (paho-mqtt 2.x, Google protobuf): ``build(site)`` gives one
connector per edge node (the devices of one ``group_id``/``edge_node_id`` on one broker share
it: the node's own metrics and those of its Sparkplug devices)."""

from __future__ import annotations

import json

from config.models import Device, SiteConfig
from connectors.base import Connector

__all__ = ["build"]


def build(site: SiteConfig) -> list[Connector]:
    from connectors.sparkplug.connector import SparkplugConnector  # protobuf loaded only here

    groups: dict[str, list[Device]] = {}
    for dev in site.devices:
        if dev.sparkplug is None:
            continue
        key = json.dumps(
            dev.sparkplug.model_dump(mode="json", exclude={"device_id"}), sort_keys=True
        )
        groups.setdefault(key, []).append(dev)
    out: list[Connector] = []
    for devices in groups.values():
        conn = devices[0].sparkplug
        assert conn is not None
        ids = [d.sparkplug.device_id for d in devices if d.sparkplug is not None]
        if len(set(ids)) != len(ids):
            raise ValueError(
                f"devices {', '.join(d.id for d in devices)}: the same Sparkplug device of edge "
                f"node {conn.group_id}/{conn.edge_node_id} twice"
            )
        client_id = conn.client_id or f"shopfloor-{site.site.id}-{devices[0].id}"[:64]
        out.append(SparkplugConnector(conn, devices, client_id=client_id, resolve=site.resolve))
    return out
