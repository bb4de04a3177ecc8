"""A full disk on the gateway: nothing corrupted, nothing acknowledged lost, recovery by itself.

On a real 2 MB tmpfs (mounted here; needs root, else skipped with the reason): a ballast file
fills the disk while the collector's writer stores samples of new series into the embedded
store (and, in the second test, the InfluxDB outbox). Writes fail with SQLITE_FULL; the writer
acknowledges nothing it could not store, counts the failures in health and retries; when the
ballast is removed it catches up by itself. Afterwards the files pass ``integrity_check`` and hold
every sample put into the queue, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.models import SiteConfig
from config.storage import InfluxStorage
from connectors.base import Sample
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.store.base import Store
from edge.store.disk import DiskWatch
from edge.store.influx.store import InfluxStore
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import Writer

T0 = 1_609_459_200_000_000_000
PER_DEVICE = 400
DEVICES = 60
OUTBOX_DEVICES = 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, check=False)


def fill(path: Path, leave: int = 0) -> None:
    """Write ``path`` until the disk is full, then give back ``leave`` bytes."""
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, chunk):
                pass
    finally:
        os.close(fd)
    size = path.stat().st_size
    os.truncate(path, max(0, size - leave))


def samples_of(i: int) -> list[Sample]:
    dev = f"m{i:03d}"
    return [Sample(dev, "kw", T0 + i * 10**9 + k, float(i * 1000 + k)) for k in range(PER_DEVICE)]


async def feed_until_full(
    store: Store, ballast: Path, devices: int = DEVICES, watch: DiskWatch | None = None
) -> tuple[Writer, HealthTracker]:
    health = HealthTracker()
    q = SampleQueue(1_000_000)
    w = Writer(
        store,
        q,
        health=health,
        batch_max_samples=PER_DEVICE,
        flush_interval_ms=5,
        retry_initial_s=0.02,
        retry_max_s=0.1,
    )
    task = asyncio.create_task(w.run())
    try:
        for i in range(devices):
            q.put_many(samples_of(i))
            for _ in range(500):
                if w.write_failures or (w.received >= (i + 1) * PER_DEVICE and not len(q)):
                    break
                await asyncio.sleep(0.01)
        for _ in range(1000):
            if w.write_failures >= 3:
                break
            await asyncio.sleep(0.01)
        assert w.write_failures >= 3, "the disk never filled: the test proves nothing"
        acked_while_full = w.acked_samples
        assert acked_while_full < devices * PER_DEVICE  # some were refused, none acknowledged
        await asyncio.sleep(0.2)
        assert w.acked_samples == acked_while_full  # nothing acknowledged while full
        if watch is not None:
            assert "fs_low" in watch.measure().alarms
        # space returns: the writer catches up by itself
        os.unlink(ballast)
        for _ in range(2000):
            if w.acked_samples == devices * PER_DEVICE:
                break
            await asyncio.sleep(0.01)
        assert w.acked_samples == devices * PER_DEVICE
        if watch is not None:
            assert watch.measure().alarms == ()
        q.close()
        await task
    finally:
        if not task.done():
            q.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await w.close()
    return w, health


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def test_full_disk_under_the_embedded_store(small_disk: Path) -> None:
    path = small_disk / "store.db"
    SqliteStore(path).close()
    ballast = small_disk / "ballast"
    fill(ballast, leave=200_000)
    site = SiteConfig.model_validate(
        {
            "site": {"id": "s", "name": "s"},
            "storage": {"kind": "sqlite", "path": str(path)},
            "evidence": {"enabled": False},
            "runtime": {"disk": {"min_free_mb": 0.1}},
        }
    )
    watch = DiskWatch(site)
    w, health = await feed_until_full(SqliteStore(path), ballast, watch=watch)
    assert w.write_failures >= 3
    counted = sum(
        n for h in health.snapshot() for k, n in h.errors.items() if k.startswith("store:")
    )
    assert counted == w.write_failures
    assert integrity(path) == "ok"
    with SqliteStore.open_readonly(path) as store:
        for i in range(DEVICES):
            s = store.read(f"m{i:03d}", "kw", T0, T0 + 10**12)
            assert s.values.tolist() == [float(i * 1000 + k) for k in range(PER_DEVICE)], i
        seqs = sorted(store.last_seq(f"m{i:03d}") for i in range(DEVICES))
        assert seqs == [1] * DEVICES


async def test_full_disk_under_the_influxdb_outbox(small_disk: Path) -> None:
    cfg = InfluxStorage.model_validate(
        {
            "kind": "influxdb",
            "url": "http://127.0.0.1:9",  # never reached: everything stays in the outbox
            "database": "d",
            "outbox_path": str(small_disk / "outbox.db"),
            "replay_backoff_max_s": 5.0,
        }
    )
    InfluxStore(cfg, site="plant", start_sender=False).close(drain_s=0)
    ballast = small_disk / "ballast"
    fill(ballast, leave=100_000)
    store = InfluxStore(cfg, site="plant", start_sender=False)
    # line protocol takes ~4x the room of the embedded store's columns: fewer devices fit
    await feed_until_full(store, ballast, devices=OUTBOX_DEVICES)
    assert integrity(small_disk / "outbox.db") == "ok"
    with contextlib.closing(sqlite3.connect(small_disk / "outbox.db")) as db:
        n, batches = db.execute("SELECT SUM(n), COUNT(*) FROM outbox").fetchone()
        sources = db.execute("SELECT COUNT(*), MAX(last_seq) FROM sources").fetchone()
    assert (n, batches) == (OUTBOX_DEVICES * PER_DEVICE, OUTBOX_DEVICES)
    assert sources == (OUTBOX_DEVICES, 1)


async def test_full_disk_under_the_ledger(small_disk: Path) -> None:
    """The evidence ledger on the same full disk: its transaction rolls back whole; a write call
    it could not log is counted (``observer_errors``), never half-written; the file stays
    sound."""
    path = small_disk.parent / "store.db"  # the store has room: only the ledger's disk fills
    SqliteStore(path).close()
    ledger = Ledger(small_disk / "ledger.db")
    ballast = small_disk / "ballast"
    fill(ballast, leave=300_000)
    store = SqliteStore(path)
    health = HealthTracker()
    q = SampleQueue(1_000_000)
    w = Writer(
        store,
        q,
        health=health,
        observers=[ledger],
        batch_max_samples=PER_DEVICE,
        flush_interval_ms=5,
        retry_initial_s=0.02,
        retry_max_s=0.1,
    )
    task = asyncio.create_task(w.run())
    try:
        for i in range(DEVICES):
            q.put_many(samples_of(i))
        for _ in range(1000):
            if w.observer_errors >= 1:
                break
            await asyncio.sleep(0.01)
        assert w.observer_errors >= 1, "the disk never filled"
        assert w.write_failures == 0
        os.unlink(ballast)
        for _ in range(2000):
            if w.acked_samples == DEVICES * PER_DEVICE:
                break
            await asyncio.sleep(0.01)
        assert w.acked_samples == DEVICES * PER_DEVICE
        q.close()
        await task
    finally:
        if not task.done():
            q.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await w.close()
        ledger.close()
    assert integrity(path) == "ok"
    assert integrity(small_disk / "ledger.db") == "ok"
    with contextlib.closing(sqlite3.connect(small_disk / "ledger.db")) as db:
        logged = db.execute("SELECT COUNT(*) FROM leaves WHERE kind = 'batch'").fetchone()[0]
    # the batches the ledger could not log are those of the failed observer calls (one call
    # holds up to max_takes=8 batches), each failure counted and logged at ERROR; the ledger
    # writes a seq_gap leaf only when the same source's next batch comes
    assert w.observer_errors >= 1
    assert 0 < DEVICES - logged <= 8 * w.observer_errors
    with Ledger(small_disk / "ledger.db", readonly=True) as led:
        assert led.size >= logged
