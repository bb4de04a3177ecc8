"""Broker restarts and persistent sessions: nothing published with QoS 1 is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from config.markers import LINK_LOST
from connectors.base import ConnectorError, Quality
from connectors.mqtt import MqttConnector, build
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


def _connector(port: int, client_id: str, **conn: object) -> MqttConnector:
    built = build(
        mqtt_site([device("r1", port, [point("n", "r/r1/n", "/n")], client_id=client_id, **conn)])
    )
    assert isinstance(built[0], MqttConnector)
    return built[0]


def _values(sink: RecordingSink) -> list[float]:
    """The good values of r1/n (the link_lost markers are bad NaN samples)."""
    return [s.value for s in sink.of("r1", "n") if s.quality == Quality.GOOD]


async def test_broker_restart_resumes_and_delivers_what_was_published_meanwhile(
    tmp_path: Path,
) -> None:
    mq = Mosquitto(tmp_path).start()
    try:
        # reconnect no sooner than 3 s: the broker is back and gets messages before we are
        conn = _connector(mq.port, "t-restart", reconnect_delay_s=3.0, reconnect_max_delay_s=3.0)
        sink = RecordingSink()
        async with running(conn, sink) as task:
            await sink.wait_for(lambda: sink.up("r1") is True)
            with publisher(mq.port) as pub:
                pub("r/r1/n", json.dumps({"n": 0}), 1)
            await sink.wait_for(lambda: _values(sink) == [0.0])

            mq.stop()
            await sink.wait_for(lambda: sink.up("r1") is False)
            mq.start()  # same port, same data: the session and its subscription survive
            with publisher(mq.port) as pub:
                for n in range(1, 21):
                    pub("r/r1/n", json.dumps({"n": n}), 1)
            assert sink.up("r1") is False, "published while the gateway was still away"

            await sink.wait_for(lambda: len(_values(sink)) == 21, within_s=15)
            assert sink.up("r1") is True
            assert not task.done()
        assert sorted(_values(sink)) == [float(n) for n in range(21)]
        # the short outage is recorded: one link_lost marker between the last value before
        # it and the first after, and one link_lost error (reconnect_timeout_s is 120 s)
        series = sink.of("r1", "n")
        (marker,) = [s for s in series if s.quality == Quality.BAD]
        assert marker.status == LINK_LOST
        assert series.index(marker) == 1
        assert series[0].ts < marker.ts < series[2].ts
        assert sink.errors[("r1", LINK_LOST)] == 1
    finally:
        mq.stop()


async def test_persistent_session_keeps_messages_while_the_gateway_is_stopped(
    broker: Mosquitto,
) -> None:
    conn = _connector(broker.port, "t-session")
    first = RecordingSink()
    async with running(conn, first):
        await first.wait_for(lambda: first.up("r1") is True)
    with publisher(broker.port) as pub:
        for n in range(5):
            pub("r/r1/n", json.dumps({"n": n}), 1)
    second = RecordingSink()
    async with running(conn, second):
        await second.wait_for(lambda: len(_values(second)) == 5)
    assert _values(second) == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_clean_session_does_not_keep_messages(broker: Mosquitto) -> None:
    conn = _connector(broker.port, "t-clean", clean_session=True)
    first = RecordingSink()
    async with running(conn, first):
        await first.wait_for(lambda: first.up("r1") is True)
    with publisher(broker.port) as pub:
        pub("r/r1/n", json.dumps({"n": 99}), 1)
    second = RecordingSink()
    async with running(conn, second):
        await second.wait_for(lambda: second.up("r1") is True)
        with publisher(broker.port) as pub:
            pub("r/r1/n", json.dumps({"n": 100}), 1)
        await second.wait_for(lambda: len(_values(second)) == 1)
    assert _values(second) == [100.0]


async def test_link_that_does_not_come_back_raises_connector_error(tmp_path: Path) -> None:
    mq = Mosquitto(tmp_path).start()
    try:
        conn = _connector(
            mq.port,
            "t-lost",
            reconnect_delay_s=0.2,
            reconnect_max_delay_s=0.4,
            reconnect_timeout_s=1.0,
        )
        sink = RecordingSink()
        task = asyncio.create_task(conn.run(sink))
        try:
            await sink.wait_for(lambda: sink.up("r1") is True)
            mq.stop()
            with pytest.raises(ConnectorError, match="down for 1 s"):
                await asyncio.wait_for(task, 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectorError):
                await task
        assert sink.up("r1") is False
    finally:
        mq.stop()
