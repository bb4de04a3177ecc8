"""The simulated factory's broker: private mosquitto, embedded amqtt fallback, named broker."""

from __future__ import annotations

import socket

import pytest

from connectors.mqtt import build
from connectors.simulators import broker as broker_mod
from connectors.simulators.broker import (
    BrokerError,
    EmbeddedBroker,
    ExternalBroker,
    MosquittoBroker,
    make_broker,
    parse_address,
)
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publish_in_thread, running
from tests.support.mosquitto import mosquitto_binary
from tests.support.net import free_port


async def _carries_a_message(port: int) -> None:
    (conn,) = build(
        mqtt_site(
            [device("b1", port, [point("v", "b/b1/v")], client_id="t-broker", clean_session=True)]
        )
    )
    sink = RecordingSink()
    async with running(conn, sink):
        await sink.wait_for(lambda: sink.up("b1") is True)
        await publish_in_thread(port, [("b/b1/v", "3.5", 1)])
        await sink.wait_for(lambda: len(sink.samples) == 1)
    assert sink.samples[0].value == 3.5


async def test_embedded_amqtt_fallback_starts_and_carries_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker_mod, "mosquitto_binary", lambda: None)  # a machine without it
    b = make_broker("127.0.0.1", free_port())
    assert isinstance(b, EmbeddedBroker)
    await b.start()
    try:
        assert "embedded amqtt" in b.describe()
        await _carries_a_message(b.port)
    finally:
        await b.stop()
    # the listener is released: a listening socket still blocks a bind with SO_REUSEADDR on
    # Linux, a connection of the test lingering in TIME_WAIT does not (it failed the bind alone)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", b.port))


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
async def test_private_mosquitto_starts_carries_and_cleans_up() -> None:
    b = make_broker()
    assert isinstance(b, MosquittoBroker)
    await b.start()
    folder = b._dir
    try:
        assert b.port > 0
        await _carries_a_message(b.port)
    finally:
        await b.stop()
        await b.stop()  # idempotent
    assert folder is not None
    assert not folder.exists()


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for b in (EmbeddedBroker("127.0.0.1", port), MosquittoBroker("127.0.0.1", port)):
            with pytest.raises(BrokerError, match=f"cannot listen on 127.0.0.1:{port}"):
                await b.start()


async def test_named_broker_must_answer() -> None:
    assert isinstance(make_broker(external="127.0.0.1:1884"), ExternalBroker)
    b = ExternalBroker("127.0.0.1", free_port(), wait_s=0.3)
    with pytest.raises(BrokerError, match="does not answer"):
        await b.start()


@pytest.mark.parametrize("bad", ["localhost", "host:", ":1883", "host:0", "host:99999"])
def test_parse_address_rejects_bad_input(bad: str) -> None:
    with pytest.raises(BrokerError, match="expected host:port"):
        parse_address(bad)


def test_parse_address() -> None:
    assert parse_address("mqtt://10.0.0.5:8883") == ("10.0.0.5", 8883)
    assert parse_address("broker.local:1884") == ("broker.local", 1884)
