"""End to end: real OPC UA servers run a scripted machine cycle, ``shopfloor run`` records it
into SQLite (killed with SIGKILL and restarted in one cycle, the servers restarted in another),
and the KPI engine's per-cycle OEE equals the hand working (tests/e2e/machine.py,
tests/e2e/README.md) to 1e-9, with an honest coverage where the data do not allow it.

Two machines run the same script, each on its own asyncua server (tests/opcua/helpers.py
``HistoryServer``): ``press`` keeps history of its nodes (the collector backfills every gap from
it), ``lathe`` keeps none (its gaps stay offline: ``gateway_down`` after the kill, ``link_lost``
after the server restart, until the value it re-sends on reconnect).

Clocks: the device and the gateway share one clock, as in a plant (the collector stamps its
heartbeat, markers and re-established values with its own clock; ``shopfloor run`` has no other).
The script is anchored at a whole second after the collector is up and played in real time; every
expected figure depends only on offsets from that anchor and on instants read back from the store
(where an outage began and ended), never on the date or the time of day. No shifts: the
calendar is around the clock. Each value is written with its scripted SourceTimestamp.

Timeline (cycle k starts at base + 6 k s; 5 cycles, about 32 s in all):

- cycle 0: clean;
- cycle 1: the collector is killed (SIGKILL) at +1.5 s and started again at +1.6 s;
- cycle 2: clean (the restarted collector is up);
- cycle 3: both servers stop at +0.5 s and start again at +1.2 s (the step at +1 s happens
  while they are down: into press's history only);
- cycle 4: clean; State = producing at its end closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from config.loader import load_site
from config.models import SiteConfig
from edge.store.sqlite import SqliteStore
from metrics.engine import PeriodResult, compute_period
from metrics.periods import TimeRange
from metrics.series import QUALITY_BAD, Series
from tests.e2e.machine import (
    CYCLE_NS,
    DOWN,
    IDEAL_S,
    PRODUCING,
    STATE_MAP,
    Hand,
    events,
    good_values,
    hand,
    lumps,
    offline_intervals,
    scripted,
)
from tests.opcua.helpers import HistoryServer
from tests.opcua.test_kill_backfill import _collector, _end, _until
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
CYCLES = 5
KILL, RESTART = CYCLE_NS + 3 * S // 2, CYCLE_NS + 16 * S // 10
SERVER_STOP, SERVER_START = 3 * CYCLE_NS + S // 2, 3 * CYCLE_NS + 12 * S // 10
MACHINES = ("press", "lathe")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _site(folder: Path, endpoints: dict[str, str]) -> Path:
    doc: dict[str, Any] = {
        "version": 1,
        "site": {"id": "t", "name": "e2e", "timezone": "UTC"},
        "runtime": {"flush_interval_ms": 20, "backoff_initial_s": 0.1, "backoff_max_s": 0.5},
        "storage": {"kind": "sqlite", "path": "store.db"},
        "evidence": {"enabled": False},
        "devices": [
            {
                "id": dev,
                "name": dev,
                "key_equipment": True,
                "control": "cnc",
                "ideal_cycle_s": IDEAL_S,
                "opcua": {"endpoint": endpoints[dev], "publishing_interval_ms": 50},
                "points": [
                    {
                        "id": "state",
                        "role": "state",
                        "datatype": "int32",
                        "state_map": STATE_MAP,
                        "opcua": {"node_id": "ns=2;s=Plant.State", "queue_size": 100},
                    },
                    {
                        "id": "count",
                        "role": "count_total",
                        "datatype": "uint32",
                        "opcua": {"node_id": "ns=2;s=Plant.Count", "queue_size": 100},
                    },
                ],
            }
            for dev in MACHINES
        ],
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _read(db: Path, dev: str, point: str) -> Series:
    ro = SqliteStore.open_readonly(db)
    try:
        return ro.read(dev, point, 0, 2**62)
    finally:
        ro.close()


def _stored(db: Path, dev: str, point: str, ts: int) -> bool:
    """Whether a good sample of ``dev/point`` at ``ts`` is in the store."""
    if not db.exists():
        return False
    try:
        return any(t == ts for t, _ in good_values(_read(db, dev, point)))
    except Exception:
        return False


@dataclass
class Recording:
    db: Path
    site: SiteConfig
    base: int
    initial: int  # source ns of the initial values (State = down, Count = 0)


def _dt(ns: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=ns // 1000)


async def _record(folder: Path) -> Recording:
    """Play the script against the two servers while ``shopfloor run`` records it."""
    servers = {
        "press": HistoryServer(free_port(), page=50),
        "lathe": HistoryServer(free_port(), historizing=False),
    }
    t0 = (time.time_ns() // S) * S
    current = {"State": (DOWN, _dt(t0)), "Count": (0, _dt(t0))}
    for srv in servers.values():
        await srv.start(dict(current))
    db = folder / "store.db"
    site = _site(folder, {d: s.endpoint for d, s in servers.items()})
    procs: list[asyncio.subprocess.Process] = []
    logs: list[IO[bytes]] = []
    try:
        procs.append(await _collector(site, 0, logs))
        await _until(
            lambda: all(_stored(db, d, "state", t0) for d in MACHINES),
            what="the collector's first values",
        )
        base = math.ceil(time.time_ns() / S) * S + S
        script = events(base, CYCLES)
        down = False

        async def kill() -> None:
            assert await _end(procs[-1], signal.SIGKILL) == -signal.SIGKILL

        async def restart() -> None:
            procs.append(await _collector(site, len(procs), logs))

        async def stop_servers() -> None:
            nonlocal down
            down = True
            await asyncio.gather(*(srv.stop() for srv in servers.values()))

        async def start_servers() -> None:
            nonlocal down
            await asyncio.gather(*(srv.start(dict(current)) for srv in servers.values()))
            down = False

        actions = [
            (base + KILL, "kill", kill),
            (base + RESTART, "restart", restart),
            (base + SERVER_STOP, "stop", stop_servers),
            (base + SERVER_START, "start", start_servers),
        ]
        timeline: list[tuple[int, int, Any]] = [(ts, 1, (n, v)) for ts, n, v in script]
        timeline += [(ts, 0, fn) for ts, _, fn in actions]
        for ts, kind, what in sorted(timeline, key=lambda x: (x[0], x[1])):
            await asyncio.sleep(max(0.0, (ts - time.time_ns()) / S))
            if kind == 0:
                await what()
                continue
            name, value = what
            current[name] = (value, _dt(ts))
            for srv in servers.values():
                if down:
                    await srv.while_down(name, value, _dt(ts))
                else:
                    await srv.write(name, value, _dt(ts))
        end = base + CYCLES * CYCLE_NS
        await _until(
            lambda: all(_stored(db, d, "state", end) for d in MACHINES),
            within=20,
            what="the last cycle's end",
        )
        assert await _end(procs[-1], signal.SIGTERM) == 0
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                with contextlib.suppress(Exception):
                    await p.wait()
        for srv in servers.values():
            with contextlib.suppress(Exception):
                await srv.stop()
        for log in logs:
            log.close()
    return Recording(db, load_site(site), base, t0)


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return asyncio.run(_record(tmp_path_factory.mktemp("e2e")))


def _period(rec: Recording, a: int, b: int) -> PeriodResult:
    ro = SqliteStore.open_readonly(rec.db)
    try:
        return compute_period(ro, rec.site, TimeRange(a, b, f"[{a}, {b})"))
    finally:
        ro.close()


def _cycle(rec: Recording, k: int) -> PeriodResult:
    c = rec.base + k * CYCLE_NS
    return _period(rec, c, c + CYCLE_NS)


def _machine(res: PeriodResult, dev: str) -> dict[str, Any]:
    return next(m for m in res.machines if m["name"] == dev)


def _parts(rec: Recording) -> list[int]:
    return [ts for ts, n, _ in events(rec.base, CYCLES) if n == "Count"]


def _hand(rec: Recording, dev: str, k: int) -> Hand:
    state = _read(rec.db, dev, "state")
    count = _read(rec.db, dev, "count")
    return hand(rec.base, k, _parts(rec), offline_intervals(state), lumps(count))


def _assert_figures(m: dict[str, Any], h: Hand) -> None:
    t = m["times_s"]
    assert t["apt"] == pytest.approx(h.apt / S, abs=1e-9)
    assert t["asut"] == pytest.approx(h.asut / S, abs=1e-9)
    assert t["adet"] == pytest.approx(h.adet / S, abs=1e-9)
    assert t["offline"] == pytest.approx(h.offline / S, abs=1e-9)
    assert m["quantities"]["pq"] == h.pq
    assert m["coverage"] == pytest.approx(h.coverage, abs=1e-9)
    if h.oee is None:
        assert m["oee"] is None
    else:
        assert m["oee"] == pytest.approx(h.oee, abs=1e-9)


def test_the_store_holds_the_script_and_nothing_else(rec: Recording) -> None:
    """Every good sample stored is the script's value at its instant (no phantom, nothing
    shifted): the hand working below may read the outages' instants from the store."""
    script = events(rec.base, CYCLES)
    for dev in MACHINES:
        for point, name, initial in (("state", "State", DOWN), ("count", "Count", 0)):
            for ts, v in good_values(_read(rec.db, dev, point)):
                assert v == scripted(script, name, ts, initial), (dev, point, ts - rec.base)
    # press: every marker healed by its backfill (a good sample at the marker's instant)
    for point in ("state", "count"):
        assert offline_intervals(_read(rec.db, "press", point)) == []


def test_clean_cycles_are_exact(rec: Recording) -> None:
    """Scenario A: cycles 0, 2 and 4 of press, cycle 0 of lathe: OEE 0.5, coverage 1."""
    clean = Hand(apt=4 * S, asut=S, adet=S, offline=0, pq=3)
    assert clean.oee == pytest.approx(0.5, abs=1e-15)
    for dev, k in (("press", 0), ("press", 2), ("press", 4), ("lathe", 0)):
        res = _cycle(rec, k)
        assert res.horizon_ns is None  # a past cycle is never cut
        m = _machine(res, dev)
        assert _hand(rec, dev, k) == clean, (dev, k)
        _assert_figures(m, clean)
        assert m["oee"] == pytest.approx(0.5, abs=1e-9)
        assert m["coverage"] == 1.0


def test_kill_9_in_a_cycle(rec: Recording) -> None:
    """Scenario B (cycle 1): press's history gives the gap back, OEE exact; lathe has no
    history: offline from the gateway_down marker to its re-sent value, coverage < 1, OEE over
    the covered time as worked by hand."""
    res = _cycle(rec, 1)
    press = _machine(res, "press")
    assert press["coverage"] == 1.0
    assert press["oee"] == pytest.approx(0.5, abs=1e-9)
    h = _hand(rec, "lathe", 1)
    c = rec.base + CYCLE_NS
    gap = offline_intervals(_read(rec.db, "lathe", "state"))
    a, b = next((x, y) for x, y in gap if c <= x < rec.base + KILL)
    # the marker stands where the first life was last known recording, before the kill; the
    # state is known again from the first value of the restarted life
    assert c <= a <= rec.base + KILL < rec.base + RESTART <= b
    assert h.offline > 0
    lathe = _machine(res, "lathe")
    _assert_figures(lathe, h)
    assert lathe["coverage"] < 1.0
    assert res.counters["lathe/count"]["unattributed"] == h.unattributed


def test_server_restart_in_a_cycle(rec: Recording) -> None:
    """Scenario C (cycle 3): link_lost on both machines; press backfilled exactly; lathe offline
    from link_lost until the value re-sent on reconnect re-establishes the state."""
    res = _cycle(rec, 3)
    press = _machine(res, "press")
    assert press["coverage"] == 1.0
    assert press["oee"] == pytest.approx(0.5, abs=1e-9)
    c = rec.base + 3 * CYCLE_NS
    gap = offline_intervals(_read(rec.db, "lathe", "state"))
    _, b = next((x, y) for x, y in gap if x >= rec.base + SERVER_STOP)
    assert b >= rec.base + SERVER_START
    if b < c + 4 * S:
        # re-sent on reconnect (producing since the cycle start): re-established at receipt
        first = dict(good_values(_read(rec.db, "lathe", "state")))[b]
        assert first == PRODUCING
    h = _hand(rec, "lathe", 3)
    assert h.offline > 0
    lathe = _machine(res, "lathe")
    _assert_figures(lathe, h)
    assert lathe["coverage"] < 1.0
    # the step read across the outage is unattributed, reported, not lost in silence
    assert res.counters["lathe/count"]["unattributed"] == h.unattributed > 0


def test_cycles_add_up_to_the_run(rec: Recording) -> None:
    """Splitting: APT, offline and PQ over the five cycles add up to the whole run's, for both
    machines; press's whole run is 5 clean cycles."""
    whole = _period(rec, rec.base, rec.base + CYCLES * CYCLE_NS)
    parts = [_cycle(rec, k) for k in range(CYCLES)]
    for dev in MACHINES:
        w = _machine(whole, dev)
        ms = [_machine(p, dev) for p in parts]
        for key in ("apt", "asut", "adet", "offline"):
            assert sum(m["times_s"][key] for m in ms) == pytest.approx(
                w["times_s"][key], abs=1e-9
            ), (dev, key)
        assert sum(m["quantities"]["pq"] for m in ms) == w["quantities"]["pq"], dev
    press = _machine(whole, "press")
    assert press["times_s"]["apt"] == pytest.approx(20.0, abs=1e-9)
    assert press["quantities"]["pq"] == 15
    assert press["oee"] == pytest.approx(0.5, abs=1e-9)


def test_no_marker_without_an_outage(rec: Recording) -> None:
    """Before the kill nothing is marked: cycle 0 of both machines holds no bad sample."""
    c = rec.base
    for dev in MACHINES:
        for point in ("state", "count"):
            s = _read(rec.db, dev, point)
            inside = (s.ts >= c) & (s.ts < c + CYCLE_NS)
            assert not (s.quality[inside] == QUALITY_BAD).any(), (dev, point)
