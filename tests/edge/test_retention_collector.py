"""The collector runs the retention pass after a compaction and shows its figures in health."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from config.loader import load_site_text
from connectors.base import Quality, Sample, Sink
from edge import runtime
from edge.runtime import Collector
from edge.store.archive_reader import ArchiveReader
from edge.store.base import Batch
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore, StoreError

T0 = 1_577_836_800 * 10**9  # 2020-01-01: older than the retention time whenever the test runs
H = 3600 * 10**9


class _Quiet:
    name = "quiet"
    devices = ("m1",)

    async def run(self, sink: Sink) -> None:
        sink.link("m1", True)
        await asyncio.Event().wait()


async def test_collector_removes_logged_old_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "COMPACT_EVERY_S", 0.05)
    monkeypatch.setattr(runtime, "RETAIN_EVERY_S", 0.0)
    site = load_site_text(
        """
site: {id: t, name: T}
runtime: {health_interval_s: 0.05}
storage: {kind: sqlite, path: store.db, raw_retention_days: 30}
evidence: {enabled: true, ledger_path: ledger.db, key_dir: keys}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points: [{id: e, modbus: {address: 0}}]
"""
    ).with_source_dir(tmp_path)
    old = [
        Batch("m1", k, (Sample("m1", "e", T0 + k * H, float(k), Quality.GOOD, ""),)) for k in (1, 2)
    ]
    with SqliteStore(tmp_path / "store.db") as store:
        store.write_batches(old)
    with Ledger(tmp_path / "ledger.db") as ledger:
        ledger.append_batches(old, now_ns=T0)
    col = Collector(site, connectors=[_Quiet()], evidence=True)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    extra: dict[str, object] = {}
    try:
        for _ in range(500):
            with contextlib.suppress(StoreError):
                ro = SqliteStore.open_readonly(tmp_path / "store.db")
                try:
                    recs = ro.health()
                finally:
                    ro.close()
                # 2 old samples, then the gateway_down marker the collector writes after them
                # at start (removed by a later pass, once the ledger has logged it)
                if recs and recs[0].extra.get("store_retention_samples_removed") == 3:
                    extra = recs[0].extra
                    break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
    assert extra["store_retention_chunks_removed"] == 3
    assert int(str(extra["store_raw_horizon_ns"])) > T0 + 2 * H
    with (
        SqliteStore.open_readonly(tmp_path / "store.db") as store,
        Ledger.open_readonly(tmp_path / "ledger.db") as ledger,
    ):
        assert len(store.read("m1", "e", 0, T0 + 9 * H)) == 0
        assert store.last_seq("m1") >= 3  # the batch records stay
        got = ArchiveReader(store, ledger).read("m1", "e", 0, T0 + 9 * H)
        assert got.values[:2].tolist() == [1.0, 2.0]
        assert got.quality.tolist() == [0, 0, 2]
        assert got.ts[2] == T0 + 2 * H + 1


def test_retention_metrics_from_the_newest_health_record() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from edge.store.base import DeviceHealth
    from gateway.metrics_prom import retention_metrics

    assert retention_metrics([DeviceHealth("m1", updated_ts=5)]) == []
    old = DeviceHealth("m1", updated_ts=1, extra={"store_retention_samples_removed": 1})
    new = DeviceHealth(
        "m2",
        updated_ts=2,
        extra={
            "store_retention_samples_removed": 7,
            "store_retention_chunks_removed": 2,
            "store_raw_horizon_ns": 1_500_000_000,
        },
    )

    class _C:
        def collect(self) -> list[object]:
            return list(retention_metrics([old, new]))

    reg = CollectorRegistry()
    reg.register(_C())  # type: ignore[arg-type]
    text = generate_latest(reg).decode()
    assert "shopfloor_store_retention_samples_removed_total 7.0" in text
    assert "shopfloor_store_retention_chunks_removed_total 2.0" in text
    assert "shopfloor_store_raw_horizon_seconds 1.5" in text
