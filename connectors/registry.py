"""Build the connectors of a site file. Each protocol package exposes ``build(site)``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from config.models import SiteConfig
from connectors.base import Connector

PROTOCOLS = ("modbus", "opcua", "mqtt", "mtconnect", "sparkplug")


def build_connectors(site: SiteConfig) -> list[Connector]:
    out: list[Connector] = []
    for proto in PROTOCOLS:
        if not any(d.protocol == proto for d in site.devices):
            continue
        module = importlib.import_module(f"connectors.{proto}")
        build = cast(Callable[[SiteConfig], list[Connector]], module.build)
        out.extend(build(site))
    return out
