"""The evidence ledger's hand-off counters in the health records the collector writes
(``extra`` fields ``ledger_*`` of every device's record, next to ``queue_len``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from config.loader import load_site_text
from connectors.base import Sample, Sink
from edge.runtime import Collector, ledger_extra
from edge.store.base import Batch
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from tests.support.ledger import stalled

KEYS = {
    "ledger_pending_samples",
    "ledger_dropped_batches",
    "ledger_dropped_samples",
    "ledger_append_errors",
    "ledger_waits",
    "ledger_max_pending_samples",
    "ledger_cpu_s",
}


def _batch(seq: int, n: int = 3) -> Batch:
    return Batch("a", seq, tuple(Sample("a", "p", seq * 1000 + i, float(i)) for i in range(n)))


def test_pending_and_dropped_handoffs_show_in_the_extra_fields(tmp_path: Path) -> None:
    with Ledger(
        tmp_path / "l.db",
        durable=False,
        background=True,
        max_pending_samples=3,
        handoff_timeout_s=0.02,
    ) as led:
        assert ledger_extra(led) == dict.fromkeys(KEYS, 0) | {"ledger_cpu_s": 0.0}
        with stalled(led, 0.3):
            led.stored([_batch(1)])  # 3 samples: the FIFO is full
            led.stored([_batch(2, 2)])  # waits 20 ms, then is dropped
            during = ledger_extra(led)
        assert during["ledger_pending_samples"] == 3
        assert (during["ledger_dropped_batches"], during["ledger_dropped_samples"]) == (1, 2)
        assert during["ledger_waits"] == 1
        assert during["ledger_max_pending_samples"] == 3
        assert led.flush(5.0)
        after = ledger_extra(led)
        assert after["ledger_pending_samples"] == 0
        assert after["ledger_dropped_samples"] == 2
        assert after["ledger_append_errors"] == 0
        assert isinstance(after["ledger_cpu_s"], float)
        assert after["ledger_cpu_s"] >= 0.0


class Feeder:
    name = "feeder"
    devices = ("m1", "m2")

    def __init__(self) -> None:
        self.sent = 0

    async def run(self, sink: Sink) -> None:
        for d in self.devices:
            sink.link(d, True)
        t = 0
        while True:
            t += 1
            sink.put_many([Sample(d, "e", t, float(t)) for d in self.devices])
            self.sent += len(self.devices)
            await asyncio.sleep(0.002)


async def test_collector_writes_the_ledger_counters_with_every_device(tmp_path: Path) -> None:
    site = load_site_text(
        """
site: {id: t, name: T}
runtime: {flush_interval_ms: 20, health_interval_s: 0.05, batch_max_samples: 1000}
storage: {kind: sqlite, path: store.db}
devices:
  - {id: m1, name: M1, modbus: {host: 127.0.0.1, port: 1502, unit: 1},
     points: [{id: e, modbus: {address: 0}}]}
  - {id: m2, name: M2, modbus: {host: 127.0.0.1, port: 1502, unit: 2},
     points: [{id: e, modbus: {address: 0}}]}
"""
    ).with_source_dir(tmp_path)
    feeder = Feeder()
    col = Collector(site, connectors=[feeder], evidence=True)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    ro: SqliteStore | None = None
    try:
        # wait for a periodic health write made while the collector runs
        for _ in range(500):
            await asyncio.sleep(0.01)
            if feeder.sent > 50 and (tmp_path / "store.db").exists():
                ro = ro or SqliteStore.open_readonly(tmp_path / "store.db")
                if ro.health() and all(h.extra.keys() >= KEYS for h in ro.health()):
                    break
        assert ro is not None
        live = ro.health()
        assert {h.device for h in live} == {"m1", "m2"}
        for h in live:
            assert h.extra.keys() >= KEYS
            assert all(isinstance(h.extra[k], int | float) for k in KEYS)
    finally:
        stop.set()
        await task
    assert col.evidence is not None
    handoff = col.evidence.ledger.handoff
    assert handoff.batches > 0  # the ledger got the batches
    final = ro.health()
    ro.close()
    for h in final:
        assert h.extra["ledger_dropped_batches"] == handoff.dropped_batches == 0
        assert h.extra["ledger_append_errors"] == 0
        assert h.extra["ledger_max_pending_samples"] >= 1
        assert h.extra["queue_len"] == 0
