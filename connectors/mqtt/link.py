"""How long an MQTT-based connector (plain MQTT, Sparkplug B) waits on its broker link before it
gives up and lets the supervisor restart it: one rule for both (pure)."""

from __future__ import annotations

from typing import Protocol

from connectors.base import ConnectorError

#: the wait when the link is up: nothing is due, the connector waits for a change
IDLE_WAIT_S = 3600.0


class BrokerLink(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def reconnect_timeout_s(self) -> float: ...


def link_wait(
    conn: BrokerLink,
    *,
    now: float,
    deadline: float,
    ever_connected: bool,
    connected: bool,
    down_since: float | None,
    reason: str | None = None,
) -> float:
    """Seconds to wait for the next link change (monotonic clock). Raises ConnectorError when
    the first connection did not come by ``deadline`` (start + ``connect_timeout_s``) or the
    link has been down since ``down_since`` for ``reconnect_timeout_s``."""
    if not ever_connected:
        wait = deadline - now
        if wait <= 0:
            raise ConnectorError(
                f"MQTT broker {conn.host}:{conn.port} did not accept the connection "
                f"within {conn.connect_timeout_s:g} s"
            )
        return wait
    if not connected and down_since is not None:
        wait = down_since + conn.reconnect_timeout_s - now
        if wait <= 0:
            why = f" ({reason})" if reason else ""
            raise ConnectorError(
                f"MQTT link to {conn.host}:{conn.port} down for {conn.reconnect_timeout_s:g} s{why}"
            )
        return wait
    return IDLE_WAIT_S
