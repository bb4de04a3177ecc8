"""All simulators of a site file: meters (Modbus TCP), CNC machines (OPC UA), quality (MQTT),
CNC machines (MTConnect agents).

Each protocol's module builds the simulators for the devices of its protocol in the site
(``build_meters``, ``build_cnc``, ``build_quality``, ``build_mtconnect``); this combines them
for ``shopfloor sim`` and ``shopfloor demo``, for the protocols the site uses, Modbus first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from config.models import SiteConfig
from connectors.simulators.base import SimClock, Simulator
from connectors.simulators.cnc import build_cnc
from connectors.simulators.meters import build_meters
from connectors.simulators.mtconnect import build_mtconnect
from connectors.simulators.quality import build_quality

Builder = Callable[[SiteConfig, int, SimClock], Sequence[Simulator]]

BUILDERS: dict[str, Builder] = {
    "modbus": build_meters,
    "opcua": build_cnc,
    "mqtt": build_quality,
    "mtconnect": build_mtconnect,
}


def build_simulators(site: SiteConfig, seed: int, clock: SimClock) -> list[Simulator]:
    """The simulators serving every simulated device of ``site``."""
    used = {d.protocol for d in site.devices}
    out: list[Simulator] = []
    for protocol, build in BUILDERS.items():
        if protocol in used:
            out.extend(build(site, seed, clock))
    return out
