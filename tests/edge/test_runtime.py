"""Collector: connectors under the supervisor into the store; stop flushes, health is written,
a restarted collector continues the sequence numbers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import ConnectorError, Quality, Sample, Sink
from edge.runtime import Collector
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore


def site_for(tmp_path: Path, flush_ms: int = 50) -> SiteConfig:
    text = f"""
site: {{id: t, name: T}}
runtime: {{flush_interval_ms: {flush_ms}, health_interval_s: 0.05, backoff_initial_s: 0.01,
          backoff_max_s: 0.05, batch_max_samples: 1000}}
storage: {{kind: sqlite, path: store.db}}
devices:
  - id: m1
    name: M1
    modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
    points:
      - {{id: e, modbus: {{address: 0}}}}
      - {{id: p, modbus: {{address: 2}}, deadband: {{value: 5}}}}
"""
    return load_site_text(text).with_source_dir(tmp_path)


class Feeder:
    """A connector (our own contract) that pushes samples and fails once on its first run."""

    name = "feeder"
    devices = ("m1",)

    def __init__(self, start: int, fail_first: bool = True) -> None:
        self.t = start
        self.runs = 0
        self.fail_first = fail_first
        self.sent = 0

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        sink.link("m1", True)
        for _ in range(5 if self.runs == 1 and self.fail_first else 10**9):
            self.t += 1
            sink.put_many(
                [Sample("m1", "e", self.t, float(self.t)), Sample("m1", "p", self.t, 1.0)]
            )
            self.sent += 2
            if self.t % 7 == 0:
                sink.error("m1", "timeout")
            await asyncio.sleep(0.002)
        raise ConnectorError("lost the link")


class Seen:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def stored(self, batches: Sequence[Batch]) -> None:
        self.batches.extend(batches)


async def test_collector_end_to_end_with_restart_and_flush(tmp_path: Path) -> None:
    site = site_for(tmp_path)
    seen = Seen()
    feeder = Feeder(start=0)
    col = Collector(site, connectors=[feeder], observers=[seen])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    for _ in range(1000):
        if feeder.runs >= 2 and feeder.sent > 100:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert col.stopped
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    e = ro.read("m1", "e", 0, 10**12)
    # every sample pushed before stop is stored: nothing left in the queue
    assert len(e) == feeder.t
    assert e.ts.tolist() == list(range(1, feeder.t + 1))
    # the constant deadbanded point is stored once per link-up (no heartbeat elapsed within
    # 300 s): the link_lost sample of the outage (gateway time) is a change, so the first value
    # after the restart (ts 6) is kept again
    assert ro.read("m1", "p", 0, 10**12).ts.tolist() == [1, 6]
    for point in ("e", "p"):
        lost = ro.read("m1", point, 10**12, 2**62)
        assert len(lost) == 1
        assert math.isnan(lost.values[0])
        assert lost.quality[0] == Quality.BAD
    (h,) = ro.health()
    assert h.device == "m1"
    assert h.connected is False  # stopped
    assert h.samples == feeder.sent
    assert h.restarts >= 1
    assert h.errors["link_lost"] >= 1
    assert h.errors["timeout"] == feeder.t // 7
    assert h.last_good_ts == feeder.t
    # the device's batches (the collector's heartbeat series has its own source, _gateway)
    m1 = [b.seq for b in seen.batches if b.source == "m1"]
    assert m1 == list(range(1, len(m1) + 1))
    last = ro.last_seq("m1")
    assert last == len(m1)
    ro.close()

    # a second life continues the sequence numbers and the data
    feeder2 = Feeder(start=feeder.t, fail_first=False)
    seen2 = Seen()
    col2 = Collector(site_for(tmp_path), connectors=[feeder2], observers=[seen2])
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(col2.run(stop2))
    for _ in range(1000):
        if feeder2.sent > 20:
            break
        await asyncio.sleep(0.01)
    stop2.set()
    await task2
    assert next(b.seq for b in seen2.batches if b.source == "m1") == last + 1
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    assert len(ro.read("m1", "e", 0, 10**12)) == feeder2.t
    ro.close()


async def test_bad_samples_count_in_health(tmp_path: Path) -> None:
    site = site_for(tmp_path)

    class Bad:
        name = "bad"
        devices = ("m1",)

        async def run(self, sink: Sink) -> None:
            sink.link("m1", True)
            sink.put(Sample("m1", "e", 1, float("nan"), Quality.BAD, "modbus_exception_2"))
            await asyncio.Event().wait()

    col = Collector(site, connectors=[Bad()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    for _ in range(500):
        if col.health.get("m1").samples:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    (h,) = ro.health()
    assert h.errors == {"bad:modbus_exception_2": 1}
    assert h.last_good_ts is None
    (lat,) = ro.latest("m1")
    assert lat.quality == Quality.BAD
    ro.close()


async def test_overflow_drops_are_counted_in_health(tmp_path: Path) -> None:
    text = """
site: {id: t, name: T}
runtime: {queue_size: 100, overflow: drop_oldest, flush_interval_ms: 20, health_interval_s: 60}
storage: {kind: sqlite, path: store.db}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: e, modbus: {address: 0}}
"""
    site = load_site_text(text).with_source_dir(tmp_path)
    done = asyncio.Event()

    class Burst:
        name = "burst"
        devices = ("m1",)

        async def run(self, sink: Sink) -> None:
            sink.link("m1", True)
            sink.put_many([Sample("m1", "e", i, float(i)) for i in range(1000)])  # 10x the queue
            done.set()
            await asyncio.Event().wait()

    col = Collector(site, connectors=[Burst()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await asyncio.wait_for(done.wait(), 10)
    stop.set()
    await task
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    (h,) = ro.health()
    stored = ro.read("m1", "e", 0, 10_000)
    ro.close()
    assert h.drops == 900
    assert len(stored) == 100
    assert stored.ts.tolist() == list(range(900, 1000))  # drop_oldest kept the newest


async def test_history_is_imported_off_the_loop_before_the_connectors(tmp_path: Path) -> None:
    """A slow baseline import neither starts after the connectors nor stalls the event loop."""
    site = site_for(tmp_path)
    order: list[str] = []

    def history() -> Iterator[Sample]:
        for i in range(1, 11):
            time.sleep(0.03)  # a slow generator or parser (blocks whoever drives it)
            yield Sample("m1", "e", i, float(i))
        order.append("history done")

    class First:
        name = "first"
        devices = ("m1",)

        async def run(self, sink: Sink) -> None:
            order.append("connector")
            sink.link("m1", True)
            sink.put(Sample("m1", "e", 100, 100.0))
            await asyncio.Event().wait()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def before() -> None:
        order.append("before_connectors")

    col = Collector(site, connectors=[First()])
    stop = asyncio.Event()
    tick_task = asyncio.create_task(ticker())
    task = asyncio.create_task(col.run(stop, history=history(), before_connectors=before))
    await asyncio.wait_for(col.ready.wait(), 10)
    ticks_during_import = ticks
    tick_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tick_task
    stop.set()
    await task
    assert order == ["history done", "before_connectors", "connector"]
    assert col.imported_batches == 1
    # the loop kept running during the 0.3 s import (blocked, it would count ~0)
    assert ticks_during_import >= 5
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        stored = ro.read("m1", "e", 0, 50)
        # the imported samples, then the bad import_end marker 1 ns after the last one
        assert stored.ts.tolist() == list(range(1, 12))
        assert stored.quality.tolist() == [0] * 10 + [2]
        assert ro.last_seq("import:m1") == 1
    finally:
        ro.close()


async def test_a_failing_start_hook_stops_cleanly_and_raises(tmp_path: Path) -> None:
    site = site_for(tmp_path)
    ran: list[str] = []

    class Never:
        name = "never"
        devices = ("m1",)

        async def run(self, sink: Sink) -> None:
            ran.append("connector")

    async def before() -> None:
        raise OSError("simulator port taken")

    col = Collector(site, connectors=[Never()])
    with pytest.raises(OSError, match="port taken"):
        await col.run(
            asyncio.Event(), history=iter([Sample("m1", "e", 1, 1.0)]), before_connectors=before
        )
    assert col.stopped
    assert not col.ready.is_set()
    assert ran == []
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        assert ro.last_seq("import:m1") == 1  # the import finished and is stored
    finally:
        ro.close()
