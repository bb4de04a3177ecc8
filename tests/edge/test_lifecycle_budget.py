"""The disk budget: sizes, growth and time to full of the store, the outbox and the ledger, the
alarms, and their /metrics gauges (hand-worked figures, pinned clock)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.models import SiteConfig
from config.storage import DiskBudget
from connectors.base import Sample, Sink
from edge.runtime import Collector
from edge.store.base import Batch, DeviceHealth
from edge.store.disk import DiskWatch, Growth, assess, report_extra, sqlite_bytes
from edge.store.sqlite import SqliteStore, StoreError
from gateway.metrics_prom import storage_metrics


def test_hand_worked_budget_report() -> None:
    cfg = DiskBudget(budget_mb=10, alarm_fraction=0.8, alarm_horizon_h=168, min_free_mb=100)
    sizes = {
        "store": ("/d/store.db", 5_000_000),
        "outbox": ("/d/outbox.db", 1_000_000),
        "ledger": ("/d/ledger.db", 2_000_000),
    }
    growth = {"store": 10.0, "outbox": None, "ledger": 2.0}
    r = assess(cfg, sizes, growth, fs_free=500_000_000)
    assert (r.budget_bytes, r.used_bytes, r.growth_bps) == (10_000_000, 8_000_000, 12.0)
    # 2 MB left at 12 B/s: 166 666.7 s = 46.3 h < 168 h; the disk: 500 MB / 12 B/s = 482 days
    assert r.time_to_full_s == pytest.approx(2_000_000 / 12)
    assert r.alarms == ("budget_used", "budget_soon")
    by = {c.name: c for c in r.components}
    assert by["store"].time_to_full_s == 200_000.0
    assert by["ledger"].time_to_full_s == 1_000_000.0
    assert by["outbox"].time_to_full_s is None  # growth not known yet


def test_no_budget_nothing_growing_and_a_low_disk() -> None:
    cfg = DiskBudget(min_free_mb=100)
    sizes = {"store": ("/d/s.db", 1_000)}
    r = assess(cfg, sizes, {"store": -5.0}, fs_free=99_999_999)
    assert r.budget_bytes is None
    assert r.time_to_full_s is None
    assert r.alarms == ("fs_low",)
    r = assess(cfg, sizes, {"store": 100.0}, fs_free=200_000_000)
    assert r.time_to_full_s == 2_000_000.0  # 23 days to a full disk: no alarm within 7 days
    assert r.alarms == ()
    r = assess(cfg, sizes, {"store": 1000.0}, fs_free=200_000_000)
    assert r.alarms == ("fs_soon",)  # 2.3 days


def test_growth_over_a_sliding_window() -> None:
    g = Growth(window_s=600)
    assert g.add(0, 1000) is None
    assert g.add(30, 1500) is None  # less than a minute of history
    assert g.add(60, 2000) == pytest.approx(1000 / 60)
    assert g.add(120, 2000) == pytest.approx(1000 / 120)
    # after 10 minutes the oldest measurements leave the window
    # (30 s after the previous one was not kept)
    assert g.add(700, 2600) == pytest.approx(600 / 580)  # from (120, 2000)


def _site(tmp_path: Path, **disk: float) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": {"id": "s", "name": "s"},
            "storage": {"kind": "sqlite", "path": "data/store.db"},
            "runtime": {"disk": {"budget_mb": 1, **disk}},
        }
    ).with_source_dir(tmp_path)


def test_disk_watch_measures_the_real_files(tmp_path: Path) -> None:
    clock = [0.0]
    site = _site(tmp_path)
    watch = DiskWatch(site, clock=lambda: clock[0])
    assert set(watch.paths) == {"store", "ledger"}
    path = tmp_path / "data" / "store.db"
    with SqliteStore(path) as store:
        first = watch.measure()
        before = sqlite_bytes(path)
        assert before > 0
        assert {c.name: c.bytes for c in first.components} == {"store": before, "ledger": 0}
        samples = tuple(Sample("m1", "kw", i, float(i)) for i in range(20_000))
        store.write_batches([Batch("m1", 1, samples)])
        clock[0] = 100.0
        second = watch.measure()
        after = sqlite_bytes(path)  # with its WAL (closing folds it into the file)
    assert after > before
    comp = {c.name: c for c in second.components}
    assert comp["store"].bytes == after
    assert comp["store"].growth_bps == pytest.approx((after - before) / 100)
    assert comp["ledger"].growth_bps == 0.0
    assert second.used_bytes == after
    assert second.time_to_full_s == pytest.approx((1_000_000 - after) / ((after - before) / 100))
    extra = watch.extra(second)
    assert extra["disk_components"]["store"]["bytes"] == after
    assert extra["disk_budget_bytes"] == 1_000_000


def test_storage_gauges_in_metrics() -> None:
    cfg = DiskBudget(budget_mb=10)
    r = assess(
        cfg,
        {"store": ("/d/s.db", 8_500_000), "ledger": ("/d/l.db", 500_000)},
        {"store": 10.0, "ledger": None},
        fs_free=1_000_000_000,
    )
    rec = DeviceHealth("m1", updated_ts=5, extra=report_extra(r))
    old = DeviceHealth("m2", updated_ts=1, extra={**report_extra(r), "disk_used_bytes": 1})
    metrics = {m.name: m for m in storage_metrics([old, rec, DeviceHealth("m3", updated_ts=9)])}
    assert metrics["shopfloor_storage_used_bytes"].samples[0].value == 9_000_000
    assert metrics["shopfloor_storage_budget_bytes"].samples[0].value == 10_000_000
    assert metrics["shopfloor_storage_time_to_full_seconds"].samples[0].value == 100_000.0
    alarms = {s.labels["alarm"]: s.value for s in metrics["shopfloor_storage_alarm"].samples}
    assert alarms == {"budget_used": 1.0, "budget_soon": 1.0, "fs_low": 0.0, "fs_soon": 0.0}
    comp = metrics["shopfloor_storage_component_time_to_full_seconds"].samples
    ttf = {s.labels["component"]: s.value for s in comp}
    assert ttf["store"] == 100_000.0
    assert math.isinf(ttf["ledger"])
    assert storage_metrics([DeviceHealth("m1")]) == []


class _Quiet:
    """A connector that reports its device up and then waits (no samples needed here)."""

    name = "quiet"
    devices = ("m1",)

    async def run(self, sink: Sink) -> None:
        sink.link("m1", True)
        await asyncio.Event().wait()


async def test_collector_health_carries_the_disk_and_touches_the_alive_file(
    tmp_path: Path,
) -> None:
    site = load_site_text(
        """
site: {id: t, name: T}
runtime: {health_interval_s: 0.05, alive_file: run/alive, disk: {budget_mb: 50}}
storage: {kind: sqlite, path: store.db}
evidence: {enabled: false}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points: [{id: e, modbus: {address: 0}}]
"""
    ).with_source_dir(tmp_path)
    (tmp_path / "run").mkdir()
    alive = tmp_path / "run" / "alive"
    col = Collector(site, connectors=[_Quiet()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        for _ in range(500):
            with contextlib.suppress(StoreError):
                ro = SqliteStore.open_readonly(tmp_path / "store.db")
                try:
                    recs = ro.health()
                finally:
                    ro.close()
                if recs and "disk_used_bytes" in recs[0].extra and alive.exists():
                    break
            await asyncio.sleep(0.02)
        first = alive.stat().st_mtime_ns
        os.utime(alive, ns=(0, 0))  # the collector sets it to now again
        for _ in range(500):
            if alive.stat().st_mtime_ns > 0:
                break
            await asyncio.sleep(0.02)
        assert alive.stat().st_mtime_ns > 0
        assert first > 0
    finally:
        stop.set()
        await task
    [h] = recs
    assert h.extra["disk_budget_bytes"] == 50_000_000
    assert set(h.extra["disk_components"]) == {"store"}
    assert h.extra["disk_used_bytes"] == h.extra["disk_components"]["store"]["bytes"] > 0
    assert h.extra["disk_alarms"] == []
