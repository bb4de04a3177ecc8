"""The collector's restart record for a protocol without history (Modbus TCP, a real pymodbus
server): each life writes the heartbeat series; the next start writes one gateway_down marker
per point whose last stored sample is good, at 1 ns after the last instant the gateway was
known recording (config.markers)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.markers import GATEWAY_DOWN, HEARTBEAT, HEARTBEAT_S
from config.models import SiteConfig
from connectors.base import Quality
from connectors.simulators.meters import MeterServer, UnitImage
from edge.runtime import Collector, heartbeat_wait
from edge.store.sqlite import SqliteStore
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio


def _site(tmp_path: Path, port: int) -> SiteConfig:
    text = f"""
site: {{id: t, name: T}}
runtime: {{flush_interval_ms: 20, health_interval_s: 0.1}}
storage: {{kind: sqlite, path: store.db}}
evidence: {{enabled: false}}
devices:
  - id: meter1
    name: Meter 1
    modbus: {{host: 127.0.0.1, port: {port}, unit: 1}}
    points:
      - {{id: e, datatype: uint16, interval_ms: 50, modbus: {{address: 0}}}}
      - {{id: bad, datatype: uint16, interval_ms: 50, modbus: {{address: 40}}}}
"""
    return load_site_text(text).with_source_dir(tmp_path)


async def _life(site: SiteConfig) -> Collector:
    """One life of the collector on the gateway's clock (Modbus readings carry it too: the
    assertions compare stored timestamps with each other only)."""
    col = Collector(site)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    deadline = asyncio.get_running_loop().time() + 15
    while col.health.get("meter1").samples < 6:
        assert asyncio.get_running_loop().time() < deadline, "no readings"
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return col


async def test_restart_writes_gateway_down_after_the_last_heartbeat(tmp_path: Path) -> None:
    port = free_port()
    # register 40 is not mapped: the point "bad" reads exception 2 (bad) every poll
    server = MeterServer({1: UnitImage(holding={0: 7})}, port=port)
    await server.start()
    try:
        site = _site(tmp_path, port)
        await _life(site)
        ro = SqliteStore.open_readonly(tmp_path / "store.db")
        try:
            beats = ro.read(*HEARTBEAT, 0, 2**62).ts.tolist()
            first_life_end = max(
                [*beats, *(int(ro.read("meter1", p, 0, 2**62).ts.max()) for p in ("e", "bad"))]
            )
        finally:
            ro.close()
        assert len(beats) >= 2  # at start and at the stop
        assert beats[-1] == first_life_end  # the final heartbeat is the last thing recorded
        second = await _life(site)
    finally:
        await server.stop()
    assert second.restart_markers == 1
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        e = ro.read("meter1", "e", first_life_end, first_life_end + 2)
        batches = [
            ro.batch("meter1", seq)
            for (seq,) in [(r[1],) for r in ro.batch_records() if r[0] == "meter1"]
        ]
    finally:
        ro.close()
    # the good point: one marker at last alive + 1 ns, then its readings of the second life
    assert e.ts.tolist() == [first_life_end + 1]
    assert e.quality.tolist() == [Quality.BAD]
    assert math.isnan(e.values[0])
    markers = [
        (s.point, s.ts, s.status)
        for b in batches
        if b is not None
        for s in b.samples
        if s.status == GATEWAY_DOWN
    ]
    # the point whose last stored sample is bad (a read error) is unknown anyway: no marker
    assert markers == [("e", first_life_end + 1, GATEWAY_DOWN)]


@pytest.mark.parametrize(
    ("real_s", "clock_s", "wait"),
    [
        (HEARTBEAT_S, HEARTBEAT_S, HEARTBEAT_S),  # the gateway's own clock
        (HEARTBEAT_S, 60 * HEARTBEAT_S, HEARTBEAT_S / 60),  # the demo's factory clock at x60
        (1.0, 6000.0, 0.05),  # at most 20 beats a second, however fast the clock
        (HEARTBEAT_S, HEARTBEAT_S / 2, HEARTBEAT_S),  # never slower than HEARTBEAT_S real time
        (HEARTBEAT_S, 0.0, HEARTBEAT_S),  # a stopped clock
        (HEARTBEAT_S, -5.0, HEARTBEAT_S),  # a clock set back
    ],
)
def test_heartbeat_follows_the_collectors_clock(real_s: float, clock_s: float, wait: float) -> None:
    """Heartbeats every HEARTBEAT_S of the collector's clock: in the demo (factory clock x60)
    a heartbeat every 600 factory seconds would leave the KPI engine no heartbeat within 20 s
    of a period's end, and the period would be cut at its last change."""
    assert heartbeat_wait(real_s, clock_s) == pytest.approx(wait)
