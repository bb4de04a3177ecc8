"""A malformed message never costs another one decoded in the same drain (issue: a payload
nested 2,000 levels deep raised RecursionError in the drain and lost the 100 valid messages
decoded before it, already acknowledged, with nothing counted)."""

from __future__ import annotations

import json

import pytest

from connectors.mqtt import MqttConnector, build
from connectors.mqtt.payload import RouteDecoder
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto


def _connector(port: int, client_id: str) -> MqttConnector:
    (conn,) = build(
        mqtt_site([device("m1", port, [point("n", "md/m1/n", "/n")], client_id=client_id)])
    )
    assert isinstance(conn, MqttConnector)
    return conn


async def _backlog(broker: Mosquitto, client_id: str, payloads: list[bytes]) -> RecordingSink:
    """Publish ``payloads`` while the gateway is away, then let it drain them in one go."""
    conn = _connector(broker.port, client_id)
    first = RecordingSink()
    async with running(conn, first):
        await first.wait_for(lambda: first.up("m1") is True)
    with publisher(broker.port) as pub:
        for p in payloads:
            pub("md/m1/n", p, 1)
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: len(sink.samples) >= len(payloads) - 1)
        await sink.wait_for(lambda: conn.acked >= len(payloads))
    return sink


async def test_a_payload_nested_2000_deep_is_too_deep_and_costs_no_other(
    broker: Mosquitto,
) -> None:
    deep = b"[" * 2000 + b"]" * 2000
    payloads = [json.dumps({"n": i}).encode() for i in range(100)]
    payloads += [deep, json.dumps({"n": 100}).encode()]
    sink = await _backlog(broker, "t-deep", payloads)
    assert [s.value for s in sink.samples] == [float(i) for i in range(101)]
    assert dict(sink.errors) == {("m1", "malformed:too_deep"): 1}


async def test_a_decoder_exception_is_counted_and_costs_no_other(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = RouteDecoder.__call__

    def failing(self: RouteDecoder, payload: bytes, received: int, max_bytes: int) -> object:
        if payload == b'{"n": "boom"}':
            raise KeyError("a decoder bug")
        return real(self, payload, received, max_bytes)

    monkeypatch.setattr(RouteDecoder, "__call__", failing)
    payloads = [b'{"n": 1}', b'{"n": "boom"}', b'{"n": 2}']
    sink = await _backlog(broker, "t-boom", payloads)
    assert [s.value for s in sink.samples] == [1.0, 2.0]
    assert dict(sink.errors) == {("m1", "malformed:decode_error"): 1}
