"""Outages recorded by the running collector against real asyncua servers (config.markers):
a restart leaves gateway_down markers, the value a server re-sends after an outage
re-establishes the state, a wrong password is auth_failed (not link_lost)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load_site_text
from config.markers import AUTH_FAILED, GATEWAY_DOWN, HEARTBEAT, LINK_LOST
from config.models import SiteConfig
from connectors.base import Quality, Sample
from connectors.simulators.cnc import SimSecurity
from edge.runtime import Collector
from edge.store.sqlite import SqliteStore
from tests.opcua.helpers import HistoryServer, PlainServer
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio

S = 1_000_000_000
# the values' source timestamps and the gateway's clock, pinned
SOURCE = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)
SOURCE_NS = int(SOURCE.timestamp()) * S
GATEWAY_NS = SOURCE_NS + 3600 * S
PASSWORD_ENV = "SHOPFLOOR_TEST_OUTAGE_PASSWORD"


def _site(tmp_path: Path, endpoint: str, **conn: Any) -> SiteConfig:
    points = [
        {"id": "temp", "opcua": {"node_id": "ns=2;s=Plant.Temp"}},
        {"id": "count", "datatype": "uint32", "opcua": {"node_id": "ns=2;s=Plant.Count"}},
    ]
    doc = {
        "version": 1,
        "site": {"id": "t", "name": "test"},
        "runtime": {
            "flush_interval_ms": 20,
            "health_interval_s": 0.1,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
        },
        "storage": {"kind": "sqlite", "path": "store.db"},
        "devices": [
            {
                "id": "m1",
                "name": "m1",
                "opcua": {"endpoint": endpoint, "publishing_interval_ms": 50, **conn},
                "points": points,
            }
        ],
    }
    return load_site_text(yaml.safe_dump(doc)).with_source_dir(tmp_path)


def _clock(start: int) -> Callable[[], int]:
    """A gateway clock that moves 1 s per reading (deterministic order, no wall clock)."""
    ticks = itertools.count(start, S)
    return lambda: next(ticks)


async def _until(cond: Callable[[], bool], within: float = 15.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _stored(db: Path, point: str) -> list[Sample]:
    """The stored series of m1/point in time order (statuses not read: see _markers)."""
    if not db.exists():
        return []
    ro = SqliteStore.open_readonly(db)
    try:
        got = ro.read("m1", point, 0, 2**62)
    finally:
        ro.close()
    return [
        Sample("m1", point, t, v, Quality(q))
        for t, v, q in zip(got.ts.tolist(), got.values.tolist(), got.quality.tolist(), strict=True)
    ]


async def _pinned_values(server: PlainServer) -> None:
    await server.write("Temp", 21.5, source=SOURCE)
    await server.write("Count", 7, source=SOURCE)


class _Run:
    """A collector running in this loop until ``stop()``."""

    def __init__(self, col: Collector) -> None:
        self.col = col
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(col.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await self.task


async def test_restart_of_a_device_without_history_marks_gateway_down(tmp_path: Path) -> None:
    server = PlainServer(free_port())
    await server.start()
    try:
        await _pinned_values(server)
        site = _site(tmp_path, server.endpoint)
        first = _Run(Collector(site, evidence=False, time_ns=lambda: GATEWAY_NS))
        await _until(lambda: first.col.health.get("m1").samples >= 2, what="the first values")
        await first.stop()
        db = tmp_path / "store.db"
        ro = SqliteStore.open_readonly(db)
        beats = ro.read(*HEARTBEAT, 0, 2**62)
        ro.close()
        assert beats.ts.tolist()[-1] == GATEWAY_NS  # the heartbeat, gateway clock
        assert set(beats.values.tolist()) == {1.0}
        # the second life, an hour later on the gateway's clock
        later = GATEWAY_NS + 3600 * S
        second = _Run(Collector(site, evidence=False, time_ns=_clock(later)))
        await _until(
            lambda: all(
                len([s for s in _stored(db, p) if s.quality is Quality.GOOD]) >= 2
                for p in ("temp", "count")
            ),
            what="the re-sent values",
        )
        await second.stop()
    finally:
        await server.stop()
    for point, value in (("temp", 21.5), ("count", 7.0)):
        series = _stored(db, point)
        assert [(s.ts, s.quality) for s in series[:2]] == [
            (SOURCE_NS, Quality.GOOD),
            (GATEWAY_NS + 1, Quality.BAD),  # last alive (the last heartbeat) + 1 ns
        ]
        assert math.isnan(series[1].value)
        # the value the server re-sends re-establishes the state, at the gateway's receive
        # time (its source timestamp is the old one)
        assert series[2].quality is Quality.GOOD
        assert series[2].value == value
        assert series[2].ts > GATEWAY_NS + 1
    markers = _markers(db)
    assert sorted(markers) == [
        ("count", GATEWAY_NS + 1, GATEWAY_DOWN),
        ("temp", GATEWAY_NS + 1, GATEWAY_DOWN),
    ]


def _markers(db: Path) -> list[tuple[str, int, str]]:
    """Every bad sample of m1 with its status: (point, ts, status)."""
    ro = SqliteStore.open_readonly(db)
    try:
        out: list[tuple[str, int, str]] = []
        for source, seq, *_ in ro.batch_records():
            if source != "m1":
                continue
            batch = ro.batch(source, seq)
            assert batch is not None
            out += [(s.point, s.ts, s.status) for s in batch.samples if s.quality is Quality.BAD]
        return out
    finally:
        ro.close()


async def test_value_resent_after_a_server_restart_reestablishes_the_state(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = PlainServer(port)
    await server.start()
    site = _site(tmp_path, server.endpoint)
    run = _Run(Collector(site, evidence=False, time_ns=_clock(GATEWAY_NS)))
    db = tmp_path / "store.db"
    try:
        await _pinned_values(server)
        await _until(
            lambda: any(s.value == 7.0 for s in _stored(db, "count")), what="the pinned value"
        )
        await server.stop()
        await _until(lambda: run.col.health.get("m1").errors.get(LINK_LOST, 0) >= 1, what="loss")
        # the same server back, holding the same values (same source timestamps)
        server = PlainServer(port)
        await server.start()
        await _pinned_values(server)
        await _until(
            lambda: sum(s.value == 7.0 for s in _stored(db, "count")) >= 2,
            what="the value re-sent after the restart",
        )
    finally:
        await run.stop()
        await server.stop()
    series = _stored(db, "count")
    lost = [s for s in series if s.quality is Quality.BAD]
    assert lost, "no link_lost marker"
    after = [s for s in series if s.ts > lost[0].ts and s.quality is Quality.GOOD]
    # re-established after the marker, at the gateway's receive time, not dropped as a
    # duplicate of the value stored before the outage
    assert after
    assert after[0].value == 7.0
    assert next(s.ts for s in series if s.quality is Quality.GOOD) == SOURCE_NS
    assert {st for p, _, st in _markers(db) if p == "count"} == {LINK_LOST}


async def test_a_true_duplicate_without_an_outage_is_dropped(tmp_path: Path) -> None:
    """Two sessions of the connector without a marker between them (the value is re-sent
    by the new subscription with its old source timestamp): stored once."""
    from connectors.opcua import OpcUaConnector, build
    from tests.opcua.helpers import RecordingSink

    server = PlainServer(free_port())
    await server.start()
    try:
        await _pinned_values(server)
        (connector,) = build(_site(tmp_path, server.endpoint))
        assert isinstance(connector, OpcUaConnector)
        sink = RecordingSink()
        for _ in range(2):
            task = asyncio.create_task(connector.run(sink))
            await sink.wait(lambda: connector.sessions >= 1 and bool(sink.samples), within=10)
            await asyncio.sleep(0.3)  # a few publishing intervals: the initial values are in
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await server.stop()
    assert connector.sessions == 2
    assert [(s.ts, s.value) for s in sink.of("m1", "count")] == [(SOURCE_NS, 7.0)]


async def test_wrong_password_is_auth_failed_not_link_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = PlainServer(
        free_port(), SimSecurity(users={"operator": "s3cret"}, allow_anonymous=False)
    )
    await server.start()
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    site = _site(tmp_path, server.endpoint, username="operator", password={"env": PASSWORD_ENV})
    run = _Run(Collector(site, evidence=False, time_ns=_clock(GATEWAY_NS)))
    try:
        await _until(
            lambda: run.col.health.get("m1").errors.get(AUTH_FAILED, 0) >= 3,
            what="three refusals",
        )
        delays = [d for _, d in run.col.supervisor.delays] if run.col.supervisor else []
    finally:
        await run.stop()
        await server.stop()
    h = run.col.health.get("m1")
    assert LINK_LOST not in h.errors
    assert h.connected is False
    # slow retries: every wait is the backoff's maximum (no quick retry against a refusal)
    assert delays
    assert set(delays) == {0.2}
    # the markers once for the outage (not per retry), one per point, auth_failed
    markers = _markers(tmp_path / "store.db")
    assert sorted((p, st) for p, _, st in markers) == [
        ("count", AUTH_FAILED),
        ("temp", AUTH_FAILED),
    ]
    refusals = [r for r in caplog.records if "authentication refused" in r.getMessage()]
    assert len(refusals) == 1
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        (rec,) = [r for r in ro.health() if r.device == "m1"]
        devices = {r.device for r in ro.health()}
    finally:
        ro.close()
    assert rec.errors.get(AUTH_FAILED, 0) >= 3
    assert devices == {"m1"}  # the heartbeat has no health record


async def test_backfill_heals_the_link_lost_marker_with_the_value_in_force(
    tmp_path: Path,
) -> None:
    """Server down between source times 10 s and 25 s; the gateway notices at 20 s (its
    link_lost marker). The device changed to 2 at 15 s (before the marker) and to 3 at 25 s;
    the history gives both back: the marker is healed by a good sample at exactly 20 s holding
    2, the value in force then."""
    base = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
    base_ns = int(base.timestamp()) * S

    def at(s: int) -> dt.datetime:
        return base + dt.timedelta(seconds=s)

    port = free_port()
    server = HistoryServer(port)
    await server.start({"Count": (0, at(0)), "State": (0, at(0))})
    doc = {
        "version": 1,
        "site": {"id": "t", "name": "test"},
        "runtime": {"flush_interval_ms": 20, "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
        "storage": {"kind": "sqlite", "path": "store.db"},
        "devices": [
            {
                "id": "m1",
                "name": "m1",
                "opcua": {"endpoint": server.endpoint, "publishing_interval_ms": 50},
                "points": [
                    {
                        "id": "count",
                        "datatype": "uint32",
                        "opcua": {"node_id": "ns=2;s=Plant.Count"},
                    }
                ],
            }
        ],
    }
    site = load_site_text(yaml.safe_dump(doc)).with_source_dir(tmp_path)
    db = tmp_path / "store.db"
    run = _Run(Collector(site, evidence=False, time_ns=lambda: base_ns + 20 * S))
    try:
        await _until(lambda: bool(_stored(db, "count")), what="the first value")
        await server.write("Count", 1, at(10))
        await _until(lambda: len(_stored(db, "count")) == 2, what="the value at 10 s")
        await server.stop()
        await _until(
            lambda: any(s.quality is Quality.BAD for s in _stored(db, "count")), what="loss"
        )
        await server.while_down("Count", 2, at(15))
        await server.start({"Count": (3, at(25))})
        await _until(
            lambda: any(s.value == 3.0 for s in _stored(db, "count")), what="the value at 25 s"
        )
        await _until(lambda: len(_stored(db, "count")) >= 6, within=5, what="the healing")
    finally:
        await run.stop()
        await server.stop()
    series = _stored(db, "count")
    assert [(s.ts - base_ns, s.value) for s in series if s.quality is Quality.GOOD] == [
        (0, 0.0),
        (10 * S, 1.0),
        (15 * S, 2.0),
        (20 * S, 2.0),  # the marker's time: the value in force then
        (25 * S, 3.0),
    ]
    assert _markers(db) == [("count", base_ns + 20 * S, LINK_LOST)]


async def test_resume_reads_a_long_gap_past_full_pages_without_continuation_points(
    tmp_path: Path,
) -> None:
    """asyncua's history stops at NumValuesPerNode (1,000) without a continuation point: the
    connector reads on from the last value, so a gap of 2,500 values comes back whole, once."""
    from connectors.opcua import OpcUaConnector, build
    from edge.store.base import Newest
    from tests.opcua.helpers import RecordingSink, running

    base = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
    base_ns = int(base.timestamp()) * S
    server = HistoryServer(free_port(), page=100_000, max_nodes_per_history_read=0)
    await server.start({"Count": (0, base)})
    try:
        for i in range(1, 2501):
            await server.while_down("Count", i, base + dt.timedelta(seconds=i))
        await server.write("Count", 2501, base + dt.timedelta(seconds=2501))
        doc = yaml.safe_dump(
            {
                "version": 1,
                "site": {"id": "t", "name": "test"},
                "devices": [
                    {
                        "id": "m1",
                        "name": "m1",
                        "opcua": {"endpoint": server.endpoint, "publishing_interval_ms": 50},
                        "points": [
                            {
                                "id": "count",
                                "datatype": "uint32",
                                "opcua": {"node_id": "ns=2;s=Plant.Count"},
                            }
                        ],
                    }
                ],
            }
        )
        (connector,) = build(load_site_text(doc))
        assert isinstance(connector, OpcUaConnector)
        stored = Sample("m1", "count", base_ns, 0.0)
        taken = connector.resume({("m1", "count"): Newest(stored, stored)}, base_ns + 10 * S)
        assert taken == {("m1", "count")}
        sink = RecordingSink()
        async with running(connector, sink):
            await sink.wait(lambda: connector.backfilled >= 2500, within=20, what="backfill")
            await asyncio.sleep(0.2)
    finally:
        await server.stop()
    got = sorted((s.ts, s.value) for s in sink.of("m1", "count"))
    assert got == [(base_ns + i * S, float(i)) for i in range(1, 2502)]
    assert all(s.quality is Quality.GOOD for s in sink.samples)  # restored: no gateway_down
