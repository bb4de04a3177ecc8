"""A refused register in the middle of a coalesced read: isolated once, the rest read in two
runs (one extra request per poll), the whole span retried later and read whole again once the
device stops refusing (issue: one refusal split the device into one request per point forever).

Run against a real pymodbus server and, as an independent reference, a Modbus TCP server
written here on raw sockets (MBAP header + function 3, exception 2)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connectors.base import Quality
from connectors.modbus import ModbusConnector, build
from connectors.simulators.meters import MeterServer, UnitImage
from edge.store.base import DeviceHealth
from gateway.metrics_prom import HealthCollector
from tests.modbus.helpers import Recorder, device, running, site
from tests.support.net import free_port

N = 21  # holding registers 0..20, one uint16 point each: one combined read of 21
REFUSED = 10


class Refusal:
    """The server's state: whether register 10 is refused, and the requests it saw, each
    with the connector's poll number at the time."""

    def __init__(self) -> None:
        self.on = True
        self.conn: ModbusConnector | None = None
        self.seen: list[tuple[int, int, int]] = []  # (poll, address, count)

    def refuses(self, address: int, count: int) -> bool:
        return self.on and address <= REFUSED < address + count

    def note(self, address: int, count: int) -> None:
        assert self.conn is not None
        self.seen.append((self.conn.stats.cycles, address, count))

    def per_poll(self) -> Counter[int]:
        return Counter(poll for poll, _, _ in self.seen)


@contextlib.asynccontextmanager
async def pymodbus_server(refusal: Refusal) -> AsyncIterator[int]:
    image = UnitImage(
        holding={a: 100 + a for a in range(N)},
        fail=lambda _t, a, c: 2 if refusal.refuses(a, c) else 0,
    )
    server = MeterServer(
        {1: image}, port=free_port(), on_request=lambda _u, _fc, a, c: refusal.note(a, c)
    )
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def raw_server(refusal: Refusal) -> AsyncIterator[int]:
    """Modbus TCP on raw sockets: read holding registers (3) of unit 1, exception 2 for an
    address outside 0..20 or a refused one."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                fc, address, count = struct.unpack(">BHH", pdu[:5])
                refusal.note(address, count)
                if fc != 3 or address + count > N or refusal.refuses(address, count):
                    body = bytes([fc | 0x80, 2])
                else:
                    regs = [100 + a for a in range(address, address + count)]
                    body = struct.pack(f">BB{count}H", fc, 2 * count, *regs)
                writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


Server = Callable[[Refusal], contextlib.AbstractAsyncContextManager[int]]


@pytest.mark.parametrize("serve", [pymodbus_server, raw_server], ids=["pymodbus", "raw-socket"])
async def test_a_refused_register_costs_at_most_one_extra_request_per_poll(serve: Server) -> None:
    refusal = Refusal()
    points: list[dict[str, Any]] = [
        {"id": f"p{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(N)
    ]
    async with serve(refusal) as port:
        (conn,) = build(
            site([device("m", port, points, poll_interval_ms=20, rejoin_after_polls=4)])
        )
        assert isinstance(conn, ModbusConnector)
        refusal.conn = conn
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: conn.stats.cycles >= 16, limit_s=20)
            split = conn.device_stats()["m"]
            refusal.on = False  # the device recovers
            recovered_at = conn.stats.cycles
            await sink.wait(lambda: conn.per_device["m"].rejoins >= 1, limit_s=20)
            rejoined_at = conn.stats.cycles
            await sink.wait(lambda: conn.stats.cycles >= rejoined_at + 6, limit_s=20)
            joined = conn.device_stats()["m"]
    per_poll = refusal.per_poll()
    last = max(per_poll)  # the last poll may have been cut by the cancellation
    # poll 1: the whole read refused, then isolated by halving in the same poll
    assert refusal.seen[0] == (1, 0, N)
    assert (1, REFUSED, 1) in refusal.seen
    # while refused: two runs around register 10 (0-9 and 11-20), and the whole span retried
    # after 4, then 8 polls (each refused retry isolates again)
    retries = sorted({p for p, a, c in refusal.seen if (a, c) == (0, N) and p > 1})
    assert retries[:2] == [5, 13]
    for poll in range(2, recovered_at):
        if poll not in retries:
            assert per_poll[poll] == 2, (poll, per_poll[poll])
            runs = sorted((a, c) for p, a, c in refusal.seen if p == poll)
            assert runs == [(0, REFUSED), (REFUSED + 1, N - REFUSED - 1)]
    # after recovery: at most one extra request per poll until the retry reads the span whole,
    # then one request per poll
    for poll in range(recovered_at + 1, last):
        assert per_poll[poll] <= 2
    for poll in range(rejoined_at + 1, last):
        assert per_poll[poll] == 1
        assert [(a, c) for p, a, c in refusal.seen if p == poll] == [(0, N)]
    # the refused point is bad when it is tried (isolation, retries), never a made-up value;
    # its neighbours are good at every poll
    p10 = sink.of("m", f"p{REFUSED}")
    assert all(s.status == "modbus_exception_2" for s in p10 if s.quality == Quality.BAD)
    assert p10[-1].quality == Quality.GOOD
    assert p10[-1].value == 100 + REFUSED
    assert all(s.quality == Quality.GOOD for s in sink.of("m", "p9"))
    assert len(sink.good("m", "p11")) >= last - 1
    # the figures for health and /metrics
    assert split["modbus_split_spans"] == 1
    assert split["modbus_refused_points"] == 1
    assert split["modbus_isolations"] >= 2
    assert joined["modbus_split_spans"] == 0
    assert joined["modbus_rejoins"] == 1
    assert joined["modbus_requests"] == len(refusal.seen)
    assert joined["modbus_requests_per_s"] > 0
    assert joined["modbus_latency_ms"] > 0


def test_metrics_show_modbus_requests_latency_and_splits() -> None:
    cfg = site([device("m", 502, [{"id": "p", "modbus": {"address": 0}}])])
    hc = HealthCollector(cfg)
    extra = {
        "modbus_requests": 120,
        "modbus_requests_per_s": 20.5,
        "modbus_latency_ms": 1.5,
        "modbus_split_spans": 1,
        "modbus_refused_points": 1,
        "modbus_isolations": 2,
        "modbus_rejoins": 1,
    }
    hc.update([DeviceHealth(device="m", extra=extra, updated_ts=1)])
    registry = CollectorRegistry()
    registry.register(hc)
    text = generate_latest(registry).decode()
    lv = '{connector="modbus",device="m"}'
    assert f"shopfloor_modbus_requests_total{lv} 120.0" in text
    assert f"shopfloor_modbus_requests_per_second{lv} 20.5" in text
    assert f"shopfloor_modbus_latency_seconds{lv} 0.0015" in text
    assert f"shopfloor_modbus_split_spans{lv} 1.0" in text
    assert f"shopfloor_modbus_refused_points{lv} 1.0" in text
    assert f"shopfloor_modbus_isolations_total{lv} 2.0" in text
    assert f"shopfloor_modbus_rejoins_total{lv} 1.0" in text
