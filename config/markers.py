"""Markers: the recorded statements of what the gateway did not know (one module for the
collector that writes them and the KPI engine and verifier that read them; docs/kpi.md,
"时间模型 / Time model").

A *marker* is a bad-quality sample (value NaN) whose ``status`` says why the value of its
(device, point) is unknown from its timestamp on, until the next good sample of the same point:

- ``link_lost``: the link to the device was lost (the supervisor, at the gateway's time of the
  failure, one per configured point of the device);
- ``gateway_down``: the collector was not running. Written at start, for every point whose
  last stored sample is good and that the connector cannot restore from the device's history,
  stamped 1 ns after the last instant the gateway is known to have been recording (its last
  heartbeat or last stored sample, whichever is later);
- ``auth_failed``: the device refused the gateway's credentials (no data until fixed);
- ``import_end``: the end of an imported file's range (every imported point, at the file's end).

A good sample at the same timestamp as a marker wins over it (a connector that restored the gap
from the device's history writes the value in force at the marker's time, so the outage is
healed exactly). A counter step whose two readings enclose a marker strictly between them
cannot be placed in time (unattributed).

The *heartbeat* series (:data:`HEARTBEAT`) is written by the running collector every
``HEARTBEAT_S`` seconds (value 1.0, good): it is how the engine knows up to when the gateway was
recording (the data horizon) when the devices themselves only send changes.
"""

from __future__ import annotations

from typing import Final

LINK_LOST: Final = "link_lost"
GATEWAY_DOWN: Final = "gateway_down"
AUTH_FAILED: Final = "auth_failed"
IMPORT_END: Final = "import_end"

#: every status that makes a bad sample an outage marker
MARKERS: Final = frozenset({LINK_LOST, GATEWAY_DOWN, AUTH_FAILED, IMPORT_END})

#: (device, point) of the collector's heartbeat series; ``_`` cannot start a configured id
HEARTBEAT_DEVICE: Final = "_gateway"
HEARTBEAT_POINT: Final = "alive"
HEARTBEAT: Final = (HEARTBEAT_DEVICE, HEARTBEAT_POINT)
HEARTBEAT_S: Final = 10.0


def is_marker(status: str | None) -> bool:
    """Whether a bad sample's status is an outage marker (as opposed to a read error)."""
    return status in MARKERS
