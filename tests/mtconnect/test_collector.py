"""The MTConnect connector in the collector: the agent's HTTP server goes away and comes back;
the supervisor restarts the connector, which resumes from its saved sequence — every part count
made while the link was down reaches the store, with the agent's times."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from config.loader import load_site_text
from config.markers import LINK_LOST
from connectors.base import Quality
from connectors.mtconnect import MtconnectConnector
from connectors.simulators.mtconnect import MtconnectAgent
from edge.runtime import Collector
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from tests.mtconnect.helpers import T0, S
from tests.support.net import free_port


async def test_link_loss_restart_and_resume_in_the_collector(tmp_path: Path) -> None:
    port = free_port()
    agent = MtconnectAgent(clock=lambda: T0, port=port)
    agent.set("avail", "AVAILABLE", T0)
    await agent.start()
    site = load_site_text(
        f"""
site: {{id: t, name: T}}
runtime: {{flush_interval_ms: 20, health_interval_s: 0.05, backoff_initial_s: 0.05,
          backoff_max_s: 0.1}}
storage: {{kind: sqlite, path: store.db}}
devices:
  - id: cnc1
    name: CNC 1
    mtconnect: {{url: "http://127.0.0.1:{port}", device: cnc1, interval_ms: 20, timeout_s: 2}}
    points:
      - {{id: total, role: count_total, mtconnect: {{type: PART_COUNT, sub_type: ALL}}}}
"""
    ).with_source_dir(tmp_path)
    conn = MtconnectConnector(site.devices[0], tmp_path / "resume.json", resume_lag_s=0.0)
    seen = Seen()
    col = Collector(site, connectors=[conn], observers=[seen])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await _until(lambda: "cnc1" in col.health and col.health.get("cnc1").connected)
        for n in range(1, 4):
            agent.set("pc_all", n, T0 + n * S)
        await _until(lambda: seen.counts() >= 3)
        await agent.stop()  # the agent's HTTP server goes away; the machine goes on
        for n in range(4, 8):
            agent.set("pc_all", n, T0 + n * S)
        await _until(lambda: col.health.get("cnc1").errors.get("link_lost", 0) >= 1)
        await agent.start()  # back on the same port, with its buffer
        await _until(lambda: seen.counts() >= 7)
    finally:
        stop.set()
        await task
        await agent.stop()
    ro = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        got = ro.read("cnc1", "total", 0, 2**62)
    finally:
        ro.close()
    good = sorted(
        {
            (int(t), float(v))
            for t, v, q in zip(got.ts, got.values, got.quality, strict=True)
            if q == Quality.GOOD
        }
    )
    assert good == [(T0 + n * S, float(n)) for n in range(1, 8)]
    lost = [(t, v) for t, v, q in zip(got.ts, got.values, got.quality, strict=True) if q != 0]
    assert lost  # the supervisor's link_lost marker of the outage (gateway time)
    assert all(math.isnan(v) for _t, v in lost)
    assert LINK_LOST in col.health.get("cnc1").errors


class Seen:
    """The batches the collector stored (an observer of the writer)."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def stored(self, batches: Sequence[Batch]) -> None:
        self.batches.extend(batches)

    def counts(self) -> int:
        """Distinct good part counts stored so far."""
        return len(
            {
                s.value
                for b in self.batches
                for s in b.samples
                if s.point == "total" and s.quality == Quality.GOOD
            }
        )


async def _until(cond: Callable[[], bool], within_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not cond():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.02)
