"""The OPC UA connector against a real asyncua server on a free loopback port (one per module)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.server.internal_session import InternalSession

from connectors.base import ConnectorError, Quality
from connectors.opcua import OpcUaConnector, build
from tests.opcua.helpers import PlainServer, RecordingSink, device, dv, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLANT = "0:Objects/2:Plant"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[PlainServer]:
    srv = PlainServer(free_port())
    await srv.start(n_extra=5)
    try:
        yield srv
    finally:
        await srv.stop()


def _connector(server: PlainServer, points: list[dict[str, Any]], **conn: Any) -> OpcUaConnector:
    conn.setdefault("publishing_interval_ms", 50)
    site = site_of([device("m1", server.endpoint, points, **conn)])
    (connector,) = build(site)
    assert isinstance(connector, OpcUaConnector)
    return connector


def _subscriptions(server: PlainServer) -> dict[int, Any]:
    """The server's internal subscriptions, by id."""
    return dict(server.server.iserver.subscription_service.subscriptions)


async def test_values_flow_with_source_timestamp(server: PlainServer) -> None:
    points = [
        {"id": "temp", "opcua": {"browse_path": f"{PLANT}/2:Temp"}, "datatype": "float64"},
        {
            "id": "flag",
            "role": "apc_mode",
            "datatype": "bool",
            "opcua": {"node_id": "ns=2;s=Plant.Flag"},
        },
        {
            "id": "count",
            "role": "count_good",
            "datatype": "uint32",
            "opcua": {"browse_path": "2:Plant/2:Count"},
        },  # relative to Objects
    ]
    sink = RecordingSink()
    source = dt.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    async with running(_connector(server, points), sink):
        await sink.wait(lambda: len({s.point for s in sink.samples}) == 3, what="initial values")
        await server.write("Temp", 21.5, source=source)
        await server.write("Flag", True)
        await server.write("Count", 42)
        await sink.wait(lambda: any(s.value == 21.5 for s in sink.of("m1", "temp")))
        await sink.wait(lambda: any(s.value == 1.0 for s in sink.of("m1", "flag")))
        await sink.wait(lambda: any(s.value == 42.0 for s in sink.of("m1", "count")))
    temp = next(s for s in sink.of("m1", "temp") if s.value == 21.5)
    assert temp.ts == int(source.timestamp()) * 1_000_000_000 + 123456 * 1000
    assert temp.quality is Quality.GOOD
    assert temp.status == ""
    assert ("m1", True) in sink.links
    assert sink.links[-1] == ("m1", False)
    assert sink.errors == []


async def test_absolute_deadband_is_applied_by_the_server(server: PlainServer) -> None:
    await server.write("Pressure", 1.0)
    points = [
        {
            "id": "p",
            "opcua": {"browse_path": f"{PLANT}/2:Pressure"},
            "deadband": {"kind": "absolute", "value": 1.0},
        },
    ]
    sink = RecordingSink()
    async with running(_connector(server, points), sink):
        await sink.wait(lambda: len(sink.of("m1", "p")) == 1, what="initial value")
        await server.write("Pressure", 1.5)  # below the deadband: not delivered
        await server.write("Pressure", 3.0)
        await sink.wait(lambda: any(s.value == 3.0 for s in sink.of("m1", "p")))
    assert [s.value for s in sink.of("m1", "p")] == [1.0, 3.0]


async def test_percent_deadband_uses_eurange_or_falls_back(server: PlainServer) -> None:
    points = [
        {
            "id": "level",
            "opcua": {"browse_path": f"{PLANT}/2:Level"},
            "deadband": {"kind": "percent", "value": 5},
        },
        {
            "id": "temp",
            "opcua": {"browse_path": f"{PLANT}/2:Temp"},
            "deadband": {"kind": "percent", "value": 5, "range": 300},
        },
        {
            "id": "pressure",
            "opcua": {"browse_path": f"{PLANT}/2:Pressure"},
            "deadband": {"kind": "percent", "value": 5},
        },
    ]
    before = set(_subscriptions(server))
    sink = RecordingSink()
    async with running(_connector(server, points), sink):
        await sink.wait(lambda: len({s.point for s in sink.samples}) == 3)
        filters = [
            m.filter
            for k, sub in _subscriptions(server).items()
            if k not in before
            for m in sub.monitored_item_srv._monitored_items.values()
        ]
    kinds = sorted(
        (int(f.DeadbandType), f.DeadbandValue) if hasattr(f, "DeadbandType") else (0, 0.0)
        for f in filters
    )
    assert kinds == [
        (0, 0.0),  # no EURange, no configured range: no deadband
        (int(ua.DeadbandType.Absolute), 15.0),  # 5% of the configured range 300
        (int(ua.DeadbandType.Percent), 5.0),  # the server has an EURange
    ]


async def test_a_bad_node_never_stops_the_others(server: PlainServer) -> None:
    points = [
        {"id": "temp", "opcua": {"browse_path": f"{PLANT}/2:Temp"}},
        {"id": "ghost", "opcua": {"node_id": "ns=2;s=Plant.Nope"}},
        {"id": "lost", "opcua": {"browse_path": f"{PLANT}/2:Nope"}},
        {
            "id": "ghost_poll",
            "opcua": {"node_id": "ns=2;s=Plant.Nope2", "mode": "poll"},
            "interval_ms": 50,
        },
        {
            "id": "count_poll",
            "opcua": {"browse_path": f"{PLANT}/2:Count", "mode": "poll"},
            "interval_ms": 50,
        },
    ]
    sink = RecordingSink()
    async with running(_connector(server, points), sink) as task:
        await sink.wait(lambda: len(sink.of("m1", "count_poll")) >= 3, what="polls")
        await server.write("Temp", 33.0)
        await sink.wait(lambda: any(s.value == 33.0 for s in sink.of("m1", "temp")))
        assert not task.done()
    for point, status in (
        ("ghost", "BadNodeIdUnknown"),
        ("lost", "BadNoMatch"),
        ("ghost_poll", "BadNodeIdUnknown"),
    ):
        bad = sink.of("m1", point)
        assert bad, point
        assert all(s.quality is Quality.BAD and math.isnan(s.value) for s in bad)
        assert bad[0].status == status
        assert ("m1", status) in sink.errors
    # a failing polled node is counted once, not on every poll
    assert sink.errors.count(("m1", "BadNodeIdUnknown")) == 2


async def test_a_bad_status_never_becomes_a_value(server: PlainServer) -> None:
    await server.write("Status", 5)
    points = [{"id": "st", "datatype": "int32", "opcua": {"browse_path": f"{PLANT}/2:Status"}}]
    sink = RecordingSink()
    async with running(_connector(server, points), sink):
        await sink.wait(lambda: len(sink.of("m1", "st")) == 1)
        await server.write("Status", 6, status=ua.StatusCodes.BadSensorFailure)
        await sink.wait(lambda: len(sink.of("m1", "st")) == 2)
        await server.write("Status", 7, status=ua.StatusCodes.UncertainLastUsableValue)
        await sink.wait(lambda: len(sink.of("m1", "st")) == 3)
        await server.write("Status", 8)
        await sink.wait(lambda: len(sink.of("m1", "st")) == 4)
    good, bad, uncertain, again = sink.of("m1", "st")
    assert (good.value, good.quality) == (5.0, Quality.GOOD)
    assert math.isnan(bad.value)
    assert (bad.quality, bad.status) == (Quality.BAD, "BadSensorFailure")
    assert (uncertain.value, uncertain.quality) == (7.0, Quality.UNCERTAIN)
    assert uncertain.status == "UncertainLastUsableValue"
    assert (again.value, again.quality) == (8.0, Quality.GOOD)


async def test_reads_and_monitored_items_fit_the_operation_limits(
    server: PlainServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server refuses requests above its limits (as real servers do): all points still
    arrive because the connector batches to the limits it reads."""
    seen: dict[str, int] = {"read": 0, "create": 0}
    orig_read, orig_create = InternalSession.read, InternalSession.create_monitored_items

    async def read(self: InternalSession, params: ua.ReadParameters) -> Any:
        seen["read"] = max(seen["read"], len(params.NodesToRead))
        if len(params.NodesToRead) > 2:
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        return await orig_read(self, params)

    async def create(self: InternalSession, params: ua.CreateMonitoredItemsParameters) -> Any:
        seen["create"] = max(seen["create"], len(params.ItemsToCreate))
        if len(params.ItemsToCreate) > 2:
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        return await orig_create(self, params)

    monkeypatch.setattr(InternalSession, "read", read)
    monkeypatch.setattr(InternalSession, "create_monitored_items", create)
    await server.set_limits(per_read=2, per_call=2)
    try:
        polled = [
            {
                "id": f"x{i}",
                "opcua": {"node_id": f"ns=2;s=Plant.X{i}", "mode": "poll"},
                "interval_ms": 50,
            }
            for i in range(5)
        ]
        subscribed = [
            {"id": name.lower(), "opcua": {"browse_path": f"{PLANT}/2:{name}"}}
            for name in ("Temp", "Flag", "Count", "Level", "Pressure")
        ]
        sink = RecordingSink()
        connector = _connector(server, polled + subscribed)
        async with running(connector, sink):
            await sink.wait(
                lambda: len({s.point for s in sink.samples}) == 10, what="all ten points"
            )
        assert connector.limits.max_nodes_per_read == 2
        assert connector.limits.max_monitored_items_per_call == 2
        assert seen == {"read": 2, "create": 2}
        assert all(s.quality is Quality.GOOD for s in sink.samples)
    finally:
        await server.set_limits(per_read=10000, per_call=10000)


async def test_watchdog_fires_on_a_silent_subscription_only(server: PlainServer) -> None:
    points = [{"id": "temp", "opcua": {"browse_path": f"{PLANT}/2:Temp"}}]
    before = set(server.server.iserver.subscription_service.subscriptions)
    sink = RecordingSink()
    connector = _connector(server, points, watchdog_s=0.6, publishing_interval_ms=50)
    async with running(connector, sink) as task:
        await sink.wait(lambda: len(sink.of("m1", "temp")) == 1)
        # no value changes for well beyond the watchdog: keep-alives keep it alive
        await asyncio.sleep(1.5)
        assert not task.done()
        # the server's subscription stops publishing (hangs) while the session stays alive
        subs = server.server.iserver.subscription_service.subscriptions
        (new,) = [subs[k] for k in subs if k not in before]
        await new.stop()
        with pytest.raises(ConnectorError, match="silent"):
            await asyncio.wait_for(asyncio.shield(task), 5.0)


async def test_no_server_is_a_connector_error() -> None:
    site = site_of(
        [
            device(
                "m1",
                f"opc.tcp://127.0.0.1:{free_port()}/x",
                [{"id": "p", "opcua": {"node_id": "ns=2;i=1"}}],
                timeout_s=1.0,
            )
        ]
    )
    (connector,) = build(site)
    with pytest.raises(ConnectorError, match="connection failed"):
        await connector.run(RecordingSink())


async def test_devices_sharing_an_endpoint_share_one_session(server: PlainServer) -> None:
    site = site_of(
        [
            device(
                "a", server.endpoint, [{"id": "t", "opcua": {"browse_path": f"{PLANT}/2:Temp"}}]
            ),
            device(
                "b", server.endpoint, [{"id": "c", "opcua": {"browse_path": f"{PLANT}/2:Count"}}]
            ),
        ]
    )
    (connector,) = build(site)
    assert connector.devices == ("a", "b")
    bad = site_of(
        [
            device("a", server.endpoint, [{"id": "t", "opcua": {"node_id": "ns=2;i=1"}}]),
            device(
                "b",
                server.endpoint,
                [{"id": "t", "opcua": {"node_id": "ns=2;i=1"}}],
                username="u",
                password={"env": "X"},
            ),
        ]
    )
    with pytest.raises(ValueError, match="differ in username, password"):
        build(bad)


async def test_steady_changes_arrive_as_blocks_of_the_columnar_decoder(server: PlainServer) -> None:
    """Against a real server: after the first values, a change is decoded column-wise and
    handed as a SampleBlock to a sink that takes blocks (the same sample as before)."""
    from connectors.base import SampleBlock

    class BlockSink(RecordingSink):
        def __init__(self) -> None:
            super().__init__()
            self.blocks: list[SampleBlock] = []

        def put_block(self, block: SampleBlock) -> None:
            self.blocks.append(block)
            self.put_many(block.samples())

    points = [{"id": "temp", "opcua": {"browse_path": f"{PLANT}/2:Temp"}, "datatype": "float64"}]
    sink = BlockSink()
    source = dt.datetime(2025, 1, 2, 3, 4, 6, 250000, tzinfo=dt.UTC)
    async with running(_connector(server, points), sink):
        await sink.wait(lambda: bool(sink.of("m1", "temp")), what="initial value")
        await server.write("Temp", 23.25, source=source)
        await sink.wait(lambda: any(b.values.tolist() == [23.25] for b in sink.blocks))
    (block,) = [b for b in sink.blocks if b.values.tolist() == [23.25]]
    assert block.device == "m1"
    assert block.points == ("temp",)
    assert block.ts.tolist() == [int(source.timestamp()) * 1_000_000_000 + 250_000_000]
    assert block.quality.tolist() == [0]


async def test_monitored_items_are_created_in_bounded_calls_without_a_server_limit(
    server: PlainServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without MaxMonitoredItemsPerCall (0) does not get every item in one call: at
    most ITEMS_PER_CALL a call (here 2), and every point still arrives."""
    from connectors.opcua import subscription

    sizes: list[int] = []
    orig_create = InternalSession.create_monitored_items

    async def create(self: InternalSession, params: ua.CreateMonitoredItemsParameters) -> Any:
        sizes.append(len(params.ItemsToCreate))
        return await orig_create(self, params)

    monkeypatch.setattr(InternalSession, "create_monitored_items", create)
    monkeypatch.setattr(subscription, "ITEMS_PER_CALL", 2)
    await server.set_limits(per_read=10000, per_call=0)
    try:
        points = [
            {"id": name.lower(), "opcua": {"browse_path": f"{PLANT}/2:{name}"}}
            for name in ("Temp", "Flag", "Count", "Level", "Pressure")
        ]
        sink = RecordingSink()
        connector = _connector(server, points)
        async with running(connector, sink):
            await sink.wait(lambda: len({s.point for s in sink.samples}) == 5, what="all five")
        assert connector.limits.max_monitored_items_per_call == 0
        assert sizes == [2, 2, 1]
    finally:
        await server.set_limits(per_read=10000, per_call=10000)


async def test_the_point_models_are_not_held_and_a_new_session_subscribes_again(
    server: PlainServer,
) -> None:
    """The connector keeps no point model per point (they stay in the device's columns and
    are read again when needed), and what it drops after a session is not needed by the next
    one: run again (as the supervisor does after a lost link), it resolves, subscribes (by
    node id, by browse path, a percent deadband on the EURange) and polls again, and
    the values that change meanwhile arrive."""
    import gc
    import weakref

    points = [
        {"id": "temp", "opcua": {"node_id": "ns=2;s=Plant.Temp"}, "datatype": "float64"},
        {"id": "count", "opcua": {"browse_path": f"{PLANT}/2:Count"}, "datatype": "uint32"},
        {
            "id": "level",
            "opcua": {"browse_path": f"{PLANT}/2:Level"},
            "deadband": {"kind": "percent", "value": 5},
        },
        {"id": "x0", "opcua": {"node_id": "ns=2;s=Plant.X0", "mode": "poll"}, "interval_ms": 50},
    ]
    connector = _connector(server, points)

    def held() -> list[str]:
        """The points whose model is alive beyond a read of it."""
        refs = [weakref.ref(r.point) for r in connector.refs]
        gc.collect()
        return [r.key[1] for r, w in zip(connector.refs, refs, strict=True) if w() is not None]

    def seen(sink: RecordingSink, point: str, value: float) -> Callable[[], bool]:
        return lambda: any(s.value == value for s in sink.of("m1", point))

    async def session(temp: float, count: int, level: float) -> RecordingSink:
        before = set(_subscriptions(server))
        sink = RecordingSink()
        async with running(connector, sink):
            await server.write("Level", level)  # before or after the item's creation
            await sink.wait(seen(sink, "level", level))
            await server.write("Temp", temp)
            await server.write("Count", count)
            x0 = dv(float(count), ua.VariantType.Double)
            await server.server.write_attribute_value(server.extra[0], x0)
            for point, value in (("temp", temp), ("count", count), ("x0", count)):
                await sink.wait(seen(sink, point, value), what=point)
            assert held() == []
            filters = [
                (int(m.filter.DeadbandType), m.filter.DeadbandValue)
                for k, sub in _subscriptions(server).items()
                if k not in before
                for m in sub.monitored_item_srv._monitored_items.values()
                if hasattr(m.filter, "DeadbandType")
            ]
        assert filters == [(int(ua.DeadbandType.Percent), 5.0)]  # the EURange read again
        return sink

    assert held() == []
    await server.write("Level", 100.0)
    for round_, (temp, count, level) in enumerate([(31.5, 7, 120.0), (32.5, 8, 150.0)]):
        sink = await session(temp, count, level)
        assert connector.sessions == round_ + 1
        assert all(s.quality is Quality.GOOD for s in sink.samples)
        # kept only while backfilling (the second session backfills: nothing historized)
        assert all(r.first is None for r in connector.refs)
        assert sink.errors == []
