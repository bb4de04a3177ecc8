"""The Modbus connector against real pymodbus servers on free loopback ports."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.base import ConnectorError, Quality
from connectors.modbus import ModbusConnector, PlanError, build
from connectors.modbus.codec import encode_raw
from connectors.simulators.meters import MeterServer, UnitImage
from tests.modbus.helpers import Recorder, device, running, site
from tests.support.net import free_port

GOLDEN = Path(__file__).parents[1] / "golden" / "modbus"


def connector_of(devices: list[dict[str, Any]]) -> ModbusConnector:
    (conn,) = build(site(devices))
    assert isinstance(conn, ModbusConnector)
    return conn


class Requests:
    """What the server saw: (unit, function code, address, count) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int, int]] = []

    def __call__(self, unit: int, fc: int, address: int, count: int) -> None:
        self.seen.append((unit, fc, address, count))


async def test_golden_cases_through_the_server() -> None:
    cases = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(GOLDEN.glob("*.yaml"))]
    image = UnitImage()
    points: list[dict[str, Any]] = []
    next_addr = {"holding": 0, "input": 0}
    for case in cases:
        table, pt = case["table"], case["point"]
        addr_block: dict[str, Any] = {"table": table, "order": pt.get("order", "ABCD")}
        if "bits" in case:
            bits = getattr(image, table)
            bits.update(dict(enumerate(case["bits"])))
            addr_block["address"] = case["bit_index"]
        else:
            start = next_addr[table]
            getattr(image, table).update({start + i: w for i, w in enumerate(case["registers"])})
            end = start + len(case["registers"])
            getattr(image, table).update(dict.fromkeys(range(end, end + 3), 0))
            next_addr[table] = end + 3  # unused registers between points: bridged
            addr_block["address"] = start
            for key in ("bit", "length"):
                if key in pt:
                    addr_block[key] = pt[key]
        points.append(
            {
                "id": case["name"],
                "datatype": pt["datatype"],
                "scale": pt.get("scale", 1.0),
                "offset": pt.get("offset", 0.0),
                "modbus": addr_block,
            }
        )
    seen = Requests()
    server = MeterServer({1: image}, port=free_port(), on_request=seen)
    await server.start()
    try:
        conn = connector_of([device("g", server.port, points, max_gap=4)])
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: all(sink.latest("g", c["name"]) for c in cases))
    finally:
        await server.stop()
    for case in cases:
        sample = sink.latest("g", case["name"])
        assert sample is not None
        expected = case["expected"]
        if "value" in expected:
            assert (sample.quality, sample.value) == (Quality.GOOD, expected["value"]), case["name"]
        else:
            assert sample.quality.text == expected["quality"], case["name"]
            assert sample.status == expected["status"], case["name"]
            assert math.isnan(sample.value)
    # coalesced: far fewer requests per cycle than points
    assert len(conn.requests) < len(cases) // 4
    assert {(fc, a, n) for _, fc, a, n in seen.seen} == {
        (r.function_code, r.address, r.count) for r in conn.requests
    }


async def test_coalescing_counts_requests_at_the_server() -> None:
    image = UnitImage(holding={a: a for a in range(300)}, input=dict.fromkeys(range(10), 7))
    points = [
        {"id": f"h{a}", "datatype": "uint32", "modbus": {"address": a}} for a in range(0, 240, 4)
    ]  # 60 points, 2 registers used of every 4
    points += [{"id": "far", "datatype": "uint16", "modbus": {"address": 290}}]
    points += [
        {"id": f"i{a}", "datatype": "uint16", "modbus": {"table": "input", "address": a}}
        for a in (0, 9)
    ]
    seen = Requests()
    server = MeterServer({1: image}, port=free_port(), on_request=seen)
    await server.start()
    try:
        conn = connector_of([device("c", server.port, points, max_registers=100, max_gap=2)])
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: conn.stats.cycles >= 3 and len(seen.seen) >= 12)
    finally:
        await server.stop()
    # holding 0..237 in blocks of <= 100 registers ending on a whole point: 0-99, 100-199,
    # 200-237; 'far' at 290 is 52 registers away: its own request; input 0 and 9: gap 8 > 2
    expected = {(3, 0, 98), (3, 100, 98), (3, 200, 38), (3, 290, 1), (4, 0, 1), (4, 9, 1)}
    assert {(fc, a, n) for _, fc, a, n in seen.seen} == expected
    # six requests per cycle (the last cycle may have been cut by the cancellation)
    assert 6 * (conn.stats.cycles - 1) <= len(seen.seen) <= 6 * conn.stats.cycles
    assert sink.latest("c", "h100") is not None
    assert sink.latest("c", "h100").value == float(100 << 16 | 101)  # type: ignore[union-attr]
    assert sink.latest("c", "i9").value == 7.0  # type: ignore[union-attr]


async def test_illegal_address_inside_a_coalesced_read_only_hits_that_point() -> None:
    # registers 6-7 do not exist: the coalesced read 0-9 is refused with exception 2
    holding = dict.fromkeys((0, 1, 2, 3, 4, 5, 8, 9), 0)
    holding.update(dict(zip((0, 1), encode_raw(1.5, "float32"), strict=True)))
    image = UnitImage(holding=holding)
    points = [
        {"id": f"p{a}", "datatype": "float32", "modbus": {"address": a}} for a in (0, 2, 4, 6, 8)
    ]
    seen = Requests()
    server = MeterServer({1: image}, port=free_port(), on_request=seen)
    await server.start()
    try:
        conn = connector_of([device("m", server.port, points)])
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: len(sink.good("m", "p8")) >= 3)
    finally:
        await server.stop()
    bad = sink.latest("m", "p6")
    assert bad is not None
    assert bad.quality == Quality.BAD
    assert bad.status == "modbus_exception_2"
    assert math.isnan(bad.value)
    assert sink.latest("m", "p0").value == 1.5  # type: ignore[union-attr]
    for p in ("p0", "p2", "p4", "p8"):
        assert all(s.quality == Quality.GOOD for s in sink.of("m", p))
    # isolated once, in the first poll, by halving; then p6 waits for the retry of the span
    assert sink.errors[("m", "modbus_exception_2")] == 1
    assert conn.stats.splits == 1
    assert seen.seen.count((1, 3, 0, 10)) == 1
    assert seen.seen.count((1, 3, 6, 2)) == 1
    # the runs that read fine, joined where they touch: 0-5 (p0, p2, p4) and 8-9 (p8)
    assert [(r.address, r.count) for r in conn.requests] == [(0, 6), (8, 2)]


async def test_exception_code_on_one_request_while_others_keep_flowing() -> None:
    counter = {"n": 0}

    def refresh(table: str, address: int, count: int) -> dict[int, int | bool]:
        counter["n"] += 1
        return {0: counter["n"] & 0xFFFF}

    def fail(table: str, address: int, count: int) -> int | None:
        return 4 if table == "input" else None  # the input block: server device failure

    image = UnitImage(holding={0: 0}, input={0: 1, 1: 2}, refresh=refresh, fail=fail)
    points = [
        {"id": "ok", "datatype": "uint16", "modbus": {"address": 0}},
        {"id": "broken", "datatype": "uint32", "modbus": {"table": "input", "address": 0}},
    ]
    server = MeterServer({3: image}, port=free_port())
    await server.start()
    try:
        conn = connector_of([device("x", server.port, points, unit=3)])
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: len(sink.good("x", "ok")) >= 5)
    finally:
        await server.stop()
    values = [s.value for s in sink.good("x", "ok")]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    broken = sink.of("x", "broken")
    assert broken
    assert all(s.status == "modbus_exception_4" for s in broken)
    assert all(s.quality == Quality.BAD and math.isnan(s.value) for s in broken)
    assert sink.errors[("x", "modbus_exception_4")] == len(broken)


async def test_dead_unit_times_out_without_stalling_the_live_one() -> None:
    live = UnitImage(holding={0: 42, 1: 43})
    dead = UnitImage(holding={0: 0, 1: 0}, hang=True)
    seen = Requests()
    server = MeterServer({1: live, 2: dead}, port=free_port(), on_request=seen)
    await server.start()
    points = [
        {"id": "v", "datatype": "uint16", "modbus": {"address": 0}},
        {"id": "w", "datatype": "uint16", "modbus": {"address": 1}},
    ]
    try:
        conn = connector_of(
            [
                device("live", server.port, points, unit=1, timeout_s=0.3),
                device("dead", server.port, points, unit=2, timeout_s=0.3),
            ]
        )
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: len(sink.good("live", "v")) >= 12, limit_s=10)
    finally:
        await server.stop()
    dead_v = sink.of("dead", "v")
    assert dead_v
    assert all(s.status == "timeout" and s.quality == Quality.BAD for s in dead_v)
    assert sink.errors[("dead", "timeout")] >= 1
    assert all(s.value == 42.0 for s in sink.good("live", "v"))
    to_dead = [r for r in seen.seen if r[0] == 2]
    to_live = [r for r in seen.seen if r[0] == 1]
    # the dead unit is retried with a backoff: it costs far fewer attempts than the live polls
    assert len(to_dead) * 2 <= len(to_live)
    # every request to the dead unit timed out (the last one may still have been waiting)
    assert len(to_dead) - 1 <= conn.stats.timeouts <= len(to_dead)


async def test_connection_refused_raises_connector_error() -> None:
    conn = connector_of([device("n", free_port(), [{"id": "a", "modbus": {"address": 0}}])])
    sink = Recorder()
    with pytest.raises(ConnectorError, match="cannot connect"):
        await conn.run(sink)


async def test_server_restart_under_the_supervisor_resumes_data() -> None:
    from edge.health import HealthTracker
    from edge.supervisor import Backoff, Supervisor

    port = free_port()
    image = UnitImage(holding={0: 5})
    server = MeterServer({1: image}, port=port)
    await server.start()
    conn = connector_of(
        [device("r", port, [{"id": "v", "datatype": "uint16", "modbus": {"address": 0}}])]
    )
    sink = Recorder()
    health = HealthTracker(conn.devices)
    sup = Supervisor([conn], sink, health, Backoff(initial_s=0.05, max_s=0.2, healthy_after_s=5))
    try:
        async with running(sup.run()):
            await sink.wait(lambda: len(sink.good("r", "v")) >= 2)
            await server.stop()
            await sink.wait(lambda: health.get("r").restarts >= 1 and ("r", False) in sink.links)
            stopped_at = time.time_ns()
            n_before = len(sink.good("r", "v"))
            server = MeterServer({1: UnitImage(holding={0: 6})}, port=port)
            await server.start()
            await sink.wait(lambda: len(sink.good("r", "v")) >= n_before + 2, limit_s=10)
    finally:
        await server.stop()
    after = [s for s in sink.good("r", "v") if s.ts > stopped_at]
    assert after
    assert after[-1].value == 6.0
    assert health.get("r").errors.get("link_lost", 0) >= 1
    assert sink.links[-1] == ("r", False)
    assert ("r", True) in sink.links


def test_devices_on_one_serial_line_must_agree() -> None:
    rtu = {"transport": "rtu", "serial_port": "/dev/ttyS9"}
    with pytest.raises(PlanError, match="baudrate 19200 differs"):
        build(
            site(
                [
                    {
                        "id": "a",
                        "name": "a",
                        "modbus": {**rtu, "unit": 1},
                        "points": [{"id": "p", "modbus": {"address": 0}}],
                    },
                    {
                        "id": "b",
                        "name": "b",
                        "modbus": {**rtu, "unit": 2, "baudrate": 19200},
                        "points": [{"id": "p", "modbus": {"address": 0}}],
                    },
                ]
            )
        )


def test_one_connector_per_endpoint() -> None:
    p1, p2 = free_port(), free_port()
    pts = [{"id": "p", "modbus": {"address": 0}}]
    conns = build(
        site([device("a", p1, pts, unit=1), device("b", p1, pts, unit=2), device("c", p2, pts)])
    )
    assert [(c.name, c.devices) for c in conns] == [
        (f"modbus 127.0.0.1:{p1}", ("a", "b")),
        (f"modbus 127.0.0.1:{p2}", ("c",)),
    ]


async def test_rtu_over_a_bridged_pseudo_terminal_pair() -> None:
    from tests.modbus.pty_bridge import PtyBridge

    async with PtyBridge() as bridge:
        image = UnitImage(
            holding=dict(enumerate(encode_raw(21.5, "float32", "CDAB"))), coil={0: True, 1: False}
        )
        server = MeterServer({7: image}, serial_port=bridge.device_a, baudrate=115200)
        await server.start()
        try:
            conn = connector_of(
                [
                    {
                        "id": "rtu",
                        "name": "rtu",
                        "modbus": {
                            "transport": "rtu",
                            "serial_port": bridge.device_b,
                            "unit": 7,
                            "baudrate": 115200,
                            "poll_interval_ms": 100,
                            "timeout_s": 0.5,
                        },
                        "points": [
                            {
                                "id": "t",
                                "datatype": "float32",
                                "modbus": {"address": 0, "order": "CDAB"},
                            },
                            {
                                "id": "c1",
                                "datatype": "bool",
                                "modbus": {"table": "coil", "address": 0},
                            },
                        ],
                    },
                ]
            )
            sink = Recorder()
            async with running(conn.run(sink)):
                await sink.wait(
                    lambda: len(sink.good("rtu", "t")) >= 2 and len(sink.good("rtu", "c1")) >= 2
                )
        finally:
            await server.stop()
    assert sink.latest("rtu", "t").value == 21.5  # type: ignore[union-attr]
    assert sink.latest("rtu", "c1").value == 1.0  # type: ignore[union-attr]
    assert conn.name.startswith("modbus rtu:")


async def test_cancellation_always_stops_a_busy_connector() -> None:
    """Cancelled mid-poll, at any moment, the connector stops (no swallowed CancelledError)."""
    image = UnitImage(holding={a: a for a in range(250)})
    server = MeterServer({1: image}, port=free_port())
    await server.start()
    points = [{"id": f"p{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(250)]
    try:
        for i in range(20):
            conn = connector_of([device("b", server.port, points, poll_interval_ms=10)])
            sink = Recorder()
            task = asyncio.ensure_future(conn.run(sink))
            await sink.wait(lambda: conn.stats.responses >= 1)  # noqa: B023
            # cancel at moments spread over a poll cycle, racing with responses
            await asyncio.sleep((i % 20) * 0.0007)
            task.cancel()
            async with asyncio.timeout(3):
                with pytest.raises(asyncio.CancelledError):
                    await task
    finally:
        await server.stop()
