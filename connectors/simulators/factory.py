"""All simulators of a site file: meters (Modbus TCP), CNC machines (OPC UA), quality (MQTT).

Each protocol's module builds the simulators for the devices of its protocol in the site
(``build_meters``, ``build_cnc``, ``build_quality``); this combines them for ``shopfloor sim``
and ``shopfloor demo``. A simulator is built only for the protocols the site uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import cast

from config.models import SiteConfig
from connectors.simulators.base import SimClock, Simulator

Builder = Callable[[SiteConfig, int, SimClock], Sequence[Simulator]]

# protocol -> (module, builder name)
BUILDERS: dict[str, tuple[str, str]] = {
    "modbus": ("connectors.simulators.meters", "build_meters"),
    "opcua": ("connectors.simulators.cnc", "build_cnc"),
    "mqtt": ("connectors.simulators.quality", "build_quality"),
}


class SimulatorUnavailable(RuntimeError):
    """The simulator of a protocol the site uses cannot be loaded."""


def builder(protocol: str) -> Builder:
    module_name, func = BUILDERS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SimulatorUnavailable(
            f"no simulator for {protocol} devices ({module_name}: {exc})"
        ) from None
    return cast(Builder, getattr(module, func))


def build_simulators(site: SiteConfig, seed: int, clock: SimClock) -> list[Simulator]:
    """The simulators serving every simulated device of ``site``, Modbus first."""
    used = {d.protocol for d in site.devices}
    out: list[Simulator] = []
    for protocol in BUILDERS:
        if protocol in used:
            out.extend(builder(protocol)(site, seed, clock))
    return out
