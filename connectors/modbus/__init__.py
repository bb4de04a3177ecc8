"""Modbus TCP and RTU connector (pymodbus): codec, request planning, polling connector.

``build(site)`` returns one connector per endpoint (TCP host:port or serial port) of the site's
Modbus devices; each serves every unit/device on that endpoint.
"""

from __future__ import annotations

from config.models import SiteConfig
from connectors.base import Connector
from connectors.modbus.connector import Endpoint, ModbusConnector, build_connectors
from connectors.modbus.plan import PlanError

__all__ = ["Endpoint", "ModbusConnector", "PlanError", "build"]


def build(site: SiteConfig) -> list[Connector]:
    """The Modbus connectors of ``site``; raises :class:`PlanError` for an unreadable point."""
    return list(build_connectors(site.devices))
