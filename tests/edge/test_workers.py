"""Connectors in worker processes (runtime.workers, edge.workers): the same samples as
in-process, worker death seen as a lost link (markers, restart), no process left after a stop.

Real Modbus TCP servers on loopback (the project's meter simulator) polled by worker processes;
every wait is bounded by a generous limit, nothing depends on wall-clock speed.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from config.markers import LINK_LOST
from config.models import SiteConfig
from connectors.base import Quality, Sample, SampleBlock
from connectors.simulators.meters import MeterServer, UnitImage
from edge.runtime import Collector
from edge.store.sqlite import SqliteStore
from edge.worker_proc import Outbox, PipeSink
from edge.workers import WorkerConnector, hand_over, shard, worker_count
from edge.workwire import Decoder, Encoder
from tests.support.net import free_port

LIMIT_S = 60.0  # generous: a loaded 2-core machine


def gone(pid: int) -> bool:
    """The process has exited (no longer exists, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


# -- pure parts ------------------------------------------------------------------------------


def test_worker_count() -> None:
    assert worker_count(0, 8) == 0
    assert worker_count(3, 1) == 3
    assert worker_count("auto", 4) == 3
    assert worker_count("auto", 1) == 0
    assert worker_count("auto", None) == 0


def test_shard_balances_points_and_leaves_no_empty_worker() -> None:
    assert shard([1000, 10, 990, 20], 2) == [[0, 1], [2, 3]]
    assert shard([5, 5], 4) == [[0], [1]]
    assert shard([], 2) == []
    assert shard([1, 2, 3], 0) == []


def test_the_wire_carries_samples_and_blocks_unchanged() -> None:
    enc, dec = Encoder(), Decoder()
    samples = [
        Sample("a", "p", 1, 1.5),
        Sample("a", "q", 2, math.nan, Quality.BAD, "link_lost"),
        Sample("b", "p", 3, 2.0),
        Sample("a", "p", 4, 3.0),
    ]
    block = SampleBlock(
        "c",
        ("x", "y"),
        np.array([5, 6], np.int64),
        np.array([7.0, 8.0]),
        np.array([0, 1], np.uint8),
    )
    enc.add_samples(samples)
    enc.add_block(block)
    taken = enc.take()
    assert taken is not None
    batch, counts = taken
    assert counts == [("a", 2), ("b", 1), ("a", 1), ("c", 2)]
    decoded = dec.decode(batch)
    out = [s for b in decoded for s in b.samples()]
    assert all(type(s.quality) is Quality for s in out)
    expect = [*samples, *block.samples()]
    assert [(s.device, s.point, s.ts, s.quality, s.status) for s in out] == [
        (s.device, s.point, s.ts, s.quality, s.status) for s in expect
    ]
    assert np.array_equal([s.value for s in out], [s.value for s in expect], equal_nan=True)
    # names travel once: the second message introduces none
    enc.add_samples([Sample("b", "p", 9, 1.0)])
    again = enc.take()
    assert again is not None
    assert again[0][0] == []
    assert dec.decode(again[0])[0].samples() == [Sample("b", "p", 9, 1.0)]
    assert enc.take() is None


# -- with real servers and processes ---------------------------------------------------------


def modbus_site(tmp: Path, ports: list[int], workers: int, **runtime: Any) -> SiteConfig:
    devices = [
        {
            "id": f"m{i}",
            "name": f"m{i}",
            "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_ms": 50},
            "points": [
                {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(20)
            ],
        }
        for i, port in enumerate(ports)
    ]
    return SiteConfig.model_validate(
        {
            "site": {"id": "w", "name": "w"},
            "devices": devices,
            "storage": {"kind": "sqlite", "path": str(tmp / "store.db")},
            "runtime": {"workers": workers, "health_interval_s": 0.2, **runtime},
        }
    )


async def servers(n: int) -> list[MeterServer]:
    out = []
    for i in range(n):
        image = UnitImage(holding={a: 100 * i + a for a in range(20)})
        server = MeterServer({1: image}, port=free_port())
        await server.start()
        out.append(server)
    return out


async def until(cond: Callable[[], Any], task: asyncio.Task[None], what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not cond():
        if task.done():
            task.result()
            raise AssertionError(f"the collector stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {LIMIT_S}s: {what}")
        await asyncio.sleep(0.05)


def read(path: Path, device: str, point: str) -> Any:
    with SqliteStore(path, readonly=True) as st:
        return st.read(device, point, 0, 2**62)


def good_count(path: Path, device: str, point: str) -> int:
    return int((read(path, device, point).quality == int(Quality.GOOD)).sum())


async def collect(tmp: Path, workers: int, polls: int) -> tuple[Collector, list[int]]:
    """Run a collector until every point has ``polls`` good samples stored; return it and the
    worker pids it had."""
    srv = await servers(2)
    site = modbus_site(tmp, [s.port for s in srv], workers)
    col = Collector(site)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    pids: list[int] = []
    try:
        db = tmp / "store.db"

        def enough() -> bool:
            return db.exists() and all(
                good_count(db, d, p) >= polls for d in ("m0", "m1") for p in ("r0", "r19")
            )

        await until(enough, task, f"{polls} polls stored")
        assert col.supervisor is not None
        workers = [c for c in col.supervisor.connectors if isinstance(c, WorkerConnector)]
        pids = [w.pid for w in workers if w.pid is not None]
    finally:
        stop.set()
        await asyncio.wait_for(task, LIMIT_S)
        for s in srv:
            await s.stop()
    return col, pids


async def test_workers_store_the_same_samples_as_in_process_and_leave_no_process(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, pids0 = await collect(tmp_path / "a", 0, 5)
    col2, pids2 = await collect(tmp_path / "b", 2, 5)
    assert pids0 == []
    assert len(pids2) == 2, "one worker process per endpoint"
    assert os.getpid() not in pids2
    for pid in pids2:
        assert gone(pid), f"worker {pid} still runs after a clean stop"
    for d, base in (("m0", 0), ("m1", 100)):
        for a in range(20):
            v0 = read(tmp_path / "a" / "store.db", d, f"r{a}").values.tolist()
            v2 = read(tmp_path / "b" / "store.db", d, f"r{a}").values.tolist()
            good0 = {v for v in v0 if not math.isnan(v)}
            good2 = {v for v in v2 if not math.isnan(v)}
            assert good0 == good2 == {float(base + a)}, (d, a)
    # the connectors' per-device figures reach the collector's health (forwarded)
    with SqliteStore(tmp_path / "b" / "store.db", readonly=True) as st:
        health = {h.device: h for h in st.health()}
    assert health["m0"].extra.get("modbus_requests", 0) >= 5
    assert col2.queue.dropped == 0


async def test_a_killed_worker_is_a_lost_link_and_is_restarted(tmp_path: Path) -> None:
    srv = await servers(2)
    site = modbus_site(tmp_path, [s.port for s in srv], 2, backoff_initial_s=0.1, backoff_max_s=0.5)
    db = tmp_path / "store.db"
    col = Collector(site)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await until(lambda: db.exists() and good_count(db, "m0", "r0") >= 2, task, "first data")
        assert col.supervisor is not None
        workers = [c for c in col.supervisor.connectors if isinstance(c, WorkerConnector)]
        victim = next(w for w in workers if "m0" in w.devices)
        pid = victim.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        def marked() -> bool:
            return bool((read(db, "m0", "r0").quality == int(Quality.BAD)).any())

        await until(marked, task, "a link_lost marker after the kill")
        await until(lambda: victim.pid != pid and victim.started >= 2, task, "a new worker")
        s = read(db, "m0", "r0")
        bad_ts = int(s.ts[s.quality == int(Quality.BAD)][0])
        assert math.isnan(float(s.values[s.quality == int(Quality.BAD)][0]))

        def flows_again() -> bool:
            r = read(db, "m0", "r0")
            return bool(((r.ts > bad_ts) & (r.quality == int(Quality.GOOD))).any())

        await until(flows_again, task, "data after the restart")
        health = col.health.get("m0")
        assert health.restarts >= 1
        assert health.errors.get(LINK_LOST, 0) >= 1
        # the other worker was not touched
        other = next(w for w in workers if w is not victim)
        assert other.started == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, LIMIT_S)
        for s in srv:
            await s.stop()
    assert all(gone(w.pid) for w in workers if w.pid is not None)


@pytest.mark.parametrize("value", [-1, 65, "many", True])
def test_a_bad_workers_setting_is_one_clear_error(value: object) -> None:
    with pytest.raises(ValueError, match="workers: give 0"):
        SiteConfig.model_validate({"site": {"id": "s", "name": "s"}, "runtime": {"workers": value}})


class HeldConn:
    """A pipe end whose sends wait until released (the collector not reading)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.release = threading.Event()

    def send(self, msg: Any) -> None:
        self.release.wait(LIMIT_S)
        self.sent.append(msg)


async def test_a_worker_drops_and_counts_what_its_bounded_outbox_cannot_hold() -> None:
    conn = HeldConn()
    outbox = Outbox(cast(Connection, conn), capacity=10, on_dead=lambda: None)
    sink = PipeSink(outbox, asyncio.get_running_loop())
    acked: list[bool] = []
    sink.put_many([Sample("a", "p", i, 1.0) for i in range(8)])
    sink.flush()  # the sender thread holds it (blocked in send) or it waits: 8 of 10
    sink.put_many([Sample("b", "p", i, 1.0) for i in range(8)])
    sink.flush()  # 8 + 8 > 10: dropped and counted
    sink.when_stored(acked.append)
    conn.release.set()
    outbox.close()
    kinds = [m[0] for m in conn.sent]
    assert ("drops", {"b": 8}) in conn.sent
    assert kinds.count("samples") == 2  # the first with its samples, the refused one's names
    assert sum(len(b[1]) for m in conn.sent if m[0] == "samples" for b in m[1][1]) == 8
    number = next(m[1] for m in conn.sent if m[0] == "when_stored")
    sink.acked(number, True)  # the collector stored what reached it: still a loss to report
    assert acked == [False]
    sink.when_stored(acked.append)  # nothing refused since: the answer passes through
    sink.acked(number + 1, True)
    assert acked == [False, True]


async def test_a_full_outbox_holds_the_worker_back_before_it_drops() -> None:
    conn = HeldConn()
    outbox = Outbox(cast(Connection, conn), capacity=10, on_dead=lambda: None)
    sink = PipeSink(outbox, asyncio.get_running_loop())
    sink.put_many([Sample("a", "p", i, 1.0) for i in range(8)])
    sink.flush()
    threading.Timer(0.05, conn.release.set).start()  # the collector reads again soon
    sink.put_many([Sample("b", "p", i, 1.0) for i in range(8)])
    sink.flush()  # waits for room (at most BLOCK_S), then goes: nothing dropped
    outbox.close()
    assert not [m for m in conn.sent if m[0] == "drops"]
    assert sum(len(b[1]) for m in conn.sent if m[0] == "samples" for b in m[1][1]) == 16


def test_hand_over_gives_the_blocks_to_the_sink_as_they_are() -> None:
    blocks = [
        SampleBlock("c", ("x",), np.array([5], np.int64), np.array([7.0]), np.array([0], np.uint8)),
        SampleBlock(
            "d", ("y", "z"), np.array([6, 7]), np.array([1.0, 2.0]), np.array([0, 2], np.uint8)
        ),
    ]
    got: list[SampleBlock] = []

    class Columnar:
        def put_block(self, b: SampleBlock) -> None:
            got.append(b)

    hand_over(cast(Any, Columnar()), blocks)
    assert [id(b) for b in got] == [id(b) for b in blocks]  # no copy, no rebuild, in order
