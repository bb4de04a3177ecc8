"""kill -9 of the collector against an OPC UA server with history: the stored series equals the
run without the kill, sample for sample (the restarted collector resumes every point from its
last stored sample and fills the gap with HistoryRead: continuation points, one node per
request as the server's MaxNodesPerHistoryReadData says).

The server's values and their source timestamps are a pinned script; the collector runs in a
subprocess (``shopfloor run``) and is killed with SIGKILL in the middle of the script.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
import yaml

from config.markers import HEARTBEAT
from connectors.base import Quality
from edge.store.sqlite import SqliteStore, StoreError
from tests.opcua.helpers import HistoryServer
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]
BASE = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
STEPS = 60
PACE_S = 0.05
POINTS = ("count", "state")


def _script() -> list[tuple[str, int, dt.datetime]]:
    """Step i: Count = i at BASE + i s; State = (i // 3) % 4 at BASE + i s + 0.5 s on change."""
    out: list[tuple[str, int, dt.datetime]] = []
    for i in range(1, STEPS + 1):
        t = BASE + dt.timedelta(seconds=i)
        out.append(("Count", i, t))
        if (i // 3) % 4 != ((i - 1) // 3) % 4:
            out.append(("State", (i // 3) % 4, t + dt.timedelta(milliseconds=500)))
    return out


def _site(folder: Path, endpoint: str) -> Path:
    doc = {
        "version": 1,
        "site": {"id": "t", "name": "test"},
        "runtime": {"flush_interval_ms": 20, "backoff_initial_s": 0.1, "backoff_max_s": 0.5},
        "storage": {"kind": "sqlite", "path": "store.db"},
        "evidence": {"enabled": False},
        "devices": [
            {
                "id": "m1",
                "name": "m1",
                "opcua": {"endpoint": endpoint, "publishing_interval_ms": 50},
                "points": [
                    {
                        "id": pid,
                        "datatype": dtype,
                        "opcua": {"node_id": f"ns=2;s=Plant.{name}", "queue_size": 100},
                    }
                    for pid, name, dtype in (
                        ("count", "Count", "uint32"),
                        ("state", "State", "int32"),
                    )
                ],
            }
        ],
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _stored(db: Path) -> dict[str, list[tuple[int, float, int]]]:
    """Every stored sample of the points (and the heartbeat) as (ts, value, quality)."""
    if not db.exists():
        return {}
    try:
        ro = SqliteStore.open_readonly(db)
    except (StoreError, sqlite3.Error):
        return {}
    try:
        out: dict[str, list[tuple[int, float, int]]] = {}
        for dev, point in [*(("m1", p) for p in POINTS), HEARTBEAT]:
            s = ro.read(dev, point, 0, 2**62)
            out[point] = list(
                zip(s.ts.tolist(), s.values.tolist(), s.quality.tolist(), strict=True)
            )
        return out
    except sqlite3.Error:
        return {}
    finally:
        ro.close()


def _goods(db: Path) -> int:
    return sum(q == Quality.GOOD for _, _, q in _stored(db).get("count", []))


def _last_count(db: Path) -> float | None:
    goods = [v for _, v, q in _stored(db).get("count", []) if q == Quality.GOOD]
    return goods[-1] if goods else None


async def _until(cond: Callable[[], bool], within: float = 30.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _collector(site: Path, life: int, logs: list[IO[bytes]]) -> asyncio.subprocess.Process:
    """``shopfloor run`` on ``site``; its log in ``collector-<life>.log`` beside the site."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = await asyncio.to_thread((site.parent / f"collector-{life}.log").open, "wb")
    logs.append(log)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.cli.main",
        "run",
        "-c",
        str(site),
        "--log-level",
        "info",
        env=env,
        stdout=log,
        stderr=log,
    )


async def _end(proc: asyncio.subprocess.Process, sig: int) -> int:
    if proc.returncode is None:
        proc.send_signal(sig)
    return await asyncio.wait_for(proc.wait(), 30)


async def _run(folder: Path, *, kill: bool) -> tuple[dict[str, list[tuple[int, float, int]]], int]:
    """The script against a fresh server and store; with ``kill``, the collector is killed
    with SIGKILL a third of the way in and started again two thirds in. Returns the stored
    samples and the server's HistoryRead count."""
    await asyncio.to_thread(folder.mkdir)
    server = HistoryServer(free_port())
    await server.start({"Count": (0, BASE), "State": (0, BASE)})
    db = folder / "store.db"
    site = _site(folder, server.endpoint)
    script = _script()
    procs: list[asyncio.subprocess.Process] = []
    logs: list[IO[bytes]] = []
    try:
        procs.append(await _collector(site, len(procs), logs))
        await _until(lambda: _last_count(db) == 0.0, what="the collector's first values")
        for k, (name, value, source) in enumerate(script):
            await server.write(name, value, source)
            await asyncio.sleep(PACE_S)
            if kill and k == len(script) // 3:
                # in the middle of the flow: whatever is in flight is lost with the process
                assert await _end(procs[-1], signal.SIGKILL) == -signal.SIGKILL
            if kill and k == 2 * len(script) // 3:
                procs.append(await _collector(site, len(procs), logs))
        # every value once (the last one may come before the backfill of the gap): compared
        # below, also when something is missing
        with contextlib.suppress(AssertionError):
            await _until(lambda: _goods(db) >= STEPS + 1, within=20)
        assert await _end(procs[-1], signal.SIGTERM) == 0
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                with contextlib.suppress(Exception):
                    await p.wait()
        await server.stop()
        for log in logs:
            log.close()
    return _stored(db), server.reads


async def test_kill_9_then_backfill_equals_the_run_without_the_kill(tmp_path: Path) -> None:
    plain, plain_reads = await _run(tmp_path / "plain", kill=False)
    killed, killed_reads = await _run(tmp_path / "killed", kill=True)
    for point in POINTS:
        want = [(t, v) for t, v, q in plain[point] if q == Quality.GOOD]
        got = [(t, v) for t, v, q in killed[point] if q == Quality.GOOD]
        assert got == want, point
        # no phantom: nothing else was stored for the point (the history gave the gap back,
        # so no gateway_down marker)
        assert all(q == Quality.GOOD for _, _, q in killed[point]), point
    script = _script()
    assert [v for _, v, _ in plain["count"]] == [float(i) for i in range(STEPS + 1)]
    assert len(plain["state"]) == 1 + sum(1 for name, _, _ in script if name == "State")
    # the steps written while no collector ran (a third of the script) can only have come
    # from the server's history, read after the restart
    assert plain_reads == 0
    assert killed_reads >= 1
    # both lives wrote their heartbeat
    assert killed[HEARTBEAT[1]]
