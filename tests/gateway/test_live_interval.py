"""The live poller stretches its interval on a large site: a poll may take at most
1/LIVE_COST_SHARE of the time (up to LIVE_MAX_WAIT_S), so that an open dashboard of 100,000
points does not take the cores the collector needs. The poll's cost comes from an injected
clock here (deterministic); the store is a real one."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

from config.loader import load_site
from connectors.base import Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from gateway.data import ReaderPool
from gateway.live import LIVE_COST_SHARE, LIVE_MAX_WAIT_S, LiveHub

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"


def _clock(step: float) -> Callable[[], float]:
    """A clock advancing ``step`` seconds per reading: every poll 'takes' ``step``."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


async def _polls_in(path: Path, step: float, seconds: float) -> tuple[int, LiveHub]:
    pool = ReaderPool(path, size=1)
    hub = LiveHub(pool, load_site(DEMO), poll_s=0.02, clock=_clock(step))
    gen = hub.stream(30.0)
    try:
        await anext(gen)  # retry line
        await anext(gen)  # snapshot: the poller runs from now
        await asyncio.sleep(seconds)
        return hub.polls, hub
    finally:
        await gen.aclose()
        await hub.close()
        await pool.close()


async def test_a_costly_poll_stretches_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.write_batches([Batch("press1", 1, (Sample("press1", "count", 10, 1.0),))])
    cheap, hub = await _polls_in(path, 0.0, 0.6)
    assert hub.interval_s == 0.02
    assert cheap >= 8  # every 20 ms (loose: a loaded machine)
    costly, hub = await _polls_in(path, 0.03, 0.6)
    assert hub.poll_cost_s == 0.03
    assert hub.interval_s == 0.03 * LIVE_COST_SHARE
    assert costly <= 3  # one at once, then every 0.3 s


def test_the_stretch_has_a_ceiling() -> None:
    hub = LiveHub(ReaderPool(None), load_site(DEMO), poll_s=0.25)
    assert hub.interval_s == 0.25
    hub.poll_cost_s = 0.02
    assert hub.interval_s == 0.25  # cheap: the configured interval
    hub.poll_cost_s = 0.2  # about 100,000 points
    assert hub.interval_s == 0.2 * LIVE_COST_SHARE
    hub.poll_cost_s = 60.0
    assert hub.interval_s == LIVE_MAX_WAIT_S
