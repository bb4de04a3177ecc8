"""The broker-link deadlines shared by the MQTT and Sparkplug B connectors (pure)."""

from __future__ import annotations

import pytest

from config.mqtt import MqttConnection
from connectors.base import ConnectorError
from connectors.mqtt.link import IDLE_WAIT_S, link_wait

CONN = MqttConnection(host="127.0.0.1", port=1884, connect_timeout_s=10, reconnect_timeout_s=120)


def test_waits_for_the_first_connection_until_the_deadline() -> None:
    kw = {"deadline": 110.0, "ever_connected": False, "connected": False, "down_since": None}
    assert link_wait(CONN, now=104.0, **kw) == pytest.approx(6.0)
    with pytest.raises(ConnectorError, match="did not accept the connection within 10 s"):
        link_wait(CONN, now=110.0, **kw)


def test_a_link_down_for_reconnect_timeout_gives_up_with_its_reason() -> None:
    kw = {"deadline": 0.0, "ever_connected": True, "connected": False, "down_since": 500.0}
    assert link_wait(CONN, now=560.0, **kw) == pytest.approx(60.0)
    with pytest.raises(ConnectorError, match=r"down for 120 s \(keepalive\)$"):
        link_wait(CONN, now=620.0, reason="keepalive", **kw)
    with pytest.raises(ConnectorError, match=r"down for 120 s$"):
        link_wait(CONN, now=620.0, **kw)


def test_an_up_link_waits_for_a_change() -> None:
    up = link_wait(
        CONN, now=1e6, deadline=0.0, ever_connected=True, connected=True, down_since=None
    )
    assert up == IDLE_WAIT_S
