"""Writer: batching by size and time, per-device batches, sequence continuity across restarts,
observers after acknowledgement, retries when the store fails, change-based recording."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from config.models import Deadband
from connectors.base import Quality, Sample
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.recording import Recorder, rule_for
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from edge.writer import Writer


class Recording:
    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int, int]]] = []
        self.threads: set[str] = set()

    def stored(self, batches: Sequence[Batch]) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append([(b.source, b.seq, len(b.samples)) for b in batches])


async def _drain(w: Writer, q: SampleQueue) -> None:
    q.close()
    await w.run()


async def test_batches_per_device_with_continuing_sequences(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    for life in range(2):
        store = SqliteStore(path)
        q = SampleQueue(1000)
        obs = Recording()
        w = Writer(store, q, observers=[obs], batch_max_samples=4, flush_interval_ms=20)
        task = asyncio.create_task(w.run())
        for i in range(6):
            q.put(Sample("a", "x", life * 100 + i, float(i)))
        q.put(Sample("b", "y", life * 100, 1.0))
        # 7 samples, max 4 per take: first take a(4); second take a(2)+b(1) after the flush time
        for _ in range(200):
            if w.acked_samples == 7:
                break
            await asyncio.sleep(0.01)
        q.close()
        await task
        await w.close()
        assert obs.calls == [
            [("a", 2 * life + 1, 4)],
            [("a", 2 * life + 2, 2), ("b", life + 1, 1)],
        ]
        assert obs.threads == {t for t in obs.threads if t.startswith("shopfloor-store")}
        assert (w.acked_batches, w.acked_samples) == (3, 7)
    ro = SqliteStore.open_readonly(path)
    assert ro.last_seq("a") == 4
    assert ro.last_seq("b") == 2
    assert len(ro.read("a", "x", 0, 1000)) == 12
    ro.close()


async def test_flush_interval_bounds_the_wait(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    q = SampleQueue(1000)
    w = Writer(store, q, batch_max_samples=10_000, flush_interval_ms=30)
    task = asyncio.create_task(w.run())
    q.put(Sample("a", "x", 1, 1.0))
    for _ in range(1000):
        if w.acked_samples >= 1:
            break
        await asyncio.sleep(0.005)
    assert w.acked_samples == 1  # written without reaching batch_max_samples
    await _drain_task(q, task)
    await w.close()


async def _drain_task(q: SampleQueue, task: asyncio.Task[None]) -> None:
    q.close()
    await task


async def test_recording_filter_and_health_counts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    q = SampleQueue(1000)
    health = HealthTracker()
    rec = Recorder({("a", "x"): rule_for(Deadband(value=1.0), heartbeat_s=3600)})
    w = Writer(store, q, recorder=rec, health=health, batch_max_samples=100, flush_interval_ms=5)
    q.put_many(
        [
            Sample("a", "x", 1, 10.0),
            Sample("a", "x", 2, 10.5),  # inside the deadband: not stored
            Sample("a", "x", 3, 12.0),
            Sample("a", "y", 4, 1.0),  # no deadband: stored
            Sample("a", "y", 5, float("nan"), Quality.BAD, "timeout"),
        ]
    )
    await _drain(w, q)
    assert store.read("a", "x", 0, 10).ts.tolist() == [1, 3]
    assert store.read("a", "y", 0, 10).ts.tolist() == [4, 5]
    h = health.get("a")
    assert (h.samples, h.last_sample_ts, h.last_good_ts) == (5, 5, 4)
    assert h.errors == {"bad:timeout": 1}
    assert (w.received, w.acked_samples) == (5, 4)
    await w.close()


class FlakyStore(SqliteStore):
    """Our Store contract over a real SqliteStore whose first writes fail like a full disk."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def write_batches(self, batches: Sequence[Batch]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        super().write_batches(batches)


async def test_failing_store_is_retried_without_losing_samples(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "w.db", failures=3)
    q = SampleQueue(1000)
    health = HealthTracker()
    obs = Recording()
    w = Writer(
        store,
        q,
        health=health,
        observers=[obs],
        batch_max_samples=100,
        flush_interval_ms=5,
        retry_initial_s=0.01,
        retry_max_s=0.02,
    )
    q.put_many([Sample("a", "x", i, float(i)) for i in range(10)])
    await _drain(w, q)
    assert store.read("a", "x", 0, 100).ts.tolist() == list(range(10))
    assert store.last_seq("a") == 1  # the retried batch kept its number
    assert w.write_failures == 3
    assert health.get("a").errors == {"store:OperationalError": 3}
    assert obs.calls == [[("a", 1, 10)]]  # observers only see acknowledged batches
    await w.close()


async def test_observer_failure_does_not_undo_the_write(tmp_path: Path) -> None:
    class Broken:
        def stored(self, batches: Sequence[Batch]) -> None:
            raise RuntimeError("ledger offline")

    store = SqliteStore(tmp_path / "w.db")
    q = SampleQueue(100)
    obs = Recording()
    w = Writer(store, q, observers=[Broken(), obs], flush_interval_ms=5)
    q.put(Sample("a", "x", 1, 1.0))
    await _drain(w, q)
    assert w.observer_errors == 1
    assert obs.calls == [[("a", 1, 1)]]
    assert store.last_seq("a") == 1
    await w.close()


async def test_import_batches_use_the_import_source(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    w = Writer(store, SampleQueue(100))
    samples = [Sample(d, "e", t, float(t)) for t in range(25) for d in ("m1", "m2")]
    n = await w.write_import(samples, batch_size=10)
    assert n == 6
    assert store.last_seq("import:m1") == 3
    assert store.last_seq("m1") == 0
    assert store.read("m1", "e", 0, 100).ts.tolist() == list(range(25))
    await w.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.last_seq("m1")  # closed with the writer


async def test_latest_held_back_by_the_throttle_is_written_when_quiet(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    store.latest_interval_s = 3600.0  # only the quiet-interval flush can write it
    q = SampleQueue(100)
    w = Writer(store, q, flush_interval_ms=20)
    task = asyncio.create_task(w.run())
    q.put(Sample("a", "x", 1, 1.0))  # first write: flushed with the batch
    for _ in range(500):
        if w.acked_samples == 1:
            break
        await asyncio.sleep(0.01)
    q.put(Sample("a", "x", 2, 2.0))  # held back by the throttle, then flushed when quiet
    ro = SqliteStore.open_readonly(tmp_path / "w.db")
    seen: list[float] = []
    for _ in range(500):
        seen = [s.value for s in ro.latest("a")]
        if seen == [2.0]:
            break
        await asyncio.sleep(0.01)
    ro.close()
    assert seen == [2.0]
    await _drain_task(q, task)
    await w.close()
