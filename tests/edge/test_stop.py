"""Stopping the collector: SIGINT/SIGTERM set the stop event, a second signal forces the stop;
a forced stop ends a flush that a failing or stuck store would make wait for ever, after
storing what still can be stored."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import edge.runtime as runtime
from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import Sample, Sink
from edge.runtime import Collector, install_stop_signals
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore


def site() -> SiteConfig:
    return load_site_text(
        """
site: {id: t, name: T}
runtime: {flush_interval_ms: 20, health_interval_s: 60, batch_max_samples: 5}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: e, modbus: {address: 0}}
"""
    )


class Pusher:
    """Pushes ten samples every 5 ms until cancelled."""

    name = "pusher"
    devices = ("m1",)

    def __init__(self) -> None:
        self.t = 0

    async def run(self, sink: Sink) -> None:
        sink.link("m1", True)
        while True:
            for _ in range(10):
                self.t += 1
                sink.put(Sample("m1", "e", self.t, float(self.t)))
            await asyncio.sleep(0.005)


class FailingStore(SqliteStore):
    """Every write fails while ``failing`` is set (e.g. a full disk, a lost InfluxDB)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failing = threading.Event()
        self.attempts = 0

    def write_batches(self, batches: Sequence[Batch]) -> None:
        self.attempts += 1
        if self.failing.is_set():
            raise OSError("disk full")
        super().write_batches(batches)


class StuckStore(SqliteStore):
    """Writes block (a write hanging in the store's thread) until ``release`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.entered = threading.Event()

    def write_batches(self, batches: Sequence[Batch]) -> None:
        self.entered.set()
        self.release.wait(30)
        super().write_batches(batches)


async def _wait_for(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_second_signal_calls_on_repeat_and_none_is_ignored() -> None:
    stop = asyncio.Event()
    forced: list[int] = []
    remove = install_stop_signals(stop, on_repeat=lambda: forced.append(1))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        assert forced == []
        os.kill(os.getpid(), signal.SIGINT)
        await _wait_for(lambda: forced == [1], 5)
        os.kill(os.getpid(), signal.SIGTERM)
        await _wait_for(lambda: forced == [1, 1], 5)
    finally:
        remove()
    # removed: the default actions are back (SIGINT raises KeyboardInterrupt)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_forced_stop_ends_endless_retries_and_stores_what_it_can(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "s.db")
    col = Collector(site(), store=store, connectors=[Pusher()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await asyncio.wait_for(col.ready.wait(), 5)
    await _wait_for(lambda: col.writer is not None and col.writer.acked_samples >= 5)
    store.failing.set()
    await _wait_for(lambda: col.writer is not None and col.writer.write_failures >= 1)
    await asyncio.sleep(0.1)  # samples pile up behind the failing write
    stop.set()
    await asyncio.sleep(0.5)
    assert not task.done()  # the flush keeps retrying the failing store: the stop waits
    queued = len(col.queue)
    assert queued > 0
    store.failing.clear()  # the store would take a write now, but only the force ends the wait
    col.force_stop()
    await asyncio.wait_for(task, 10)
    assert col.stopped
    assert col.forced
    assert col.unflushed == 0
    assert col.abandoned == []
    ro = SqliteStore.open_readonly(tmp_path / "s.db")
    try:
        stored = ro.read("m1", "e", 0, 10**12).ts.tolist()
    finally:
        ro.close()
    # what was queued at the force is stored (the take being retried at that moment is given up)
    assert len(stored) >= 5 + queued
    assert stored == sorted(stored)


async def test_forced_stop_leaves_a_stuck_store_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "FORCE_GRACE_S", 0.2)
    store = StuckStore(tmp_path / "s.db")
    col = Collector(site(), store=store, connectors=[Pusher()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await asyncio.wait_for(asyncio.to_thread(store.entered.wait, 5), 6)
        await asyncio.sleep(0.05)  # more samples queue behind the stuck write
        stop.set()
        await asyncio.sleep(0.3)
        assert not task.done()
        queued = len(col.queue)
        col.force_stop()
        col.force_stop()  # idempotent
        await asyncio.wait_for(task, 5)
        assert col.forced
        assert col.unflushed == queued > 0
        assert len(col.abandoned) == 2  # the health write and the store close
    finally:
        store.release.set()
        await asyncio.wait_for(asyncio.gather(*col.abandoned, return_exceptions=True), 10)
        if not task.done():
            await task
    assert all(t.done() for t in col.abandoned)
