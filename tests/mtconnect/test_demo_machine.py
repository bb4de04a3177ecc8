"""The demo factory's MTConnect CNC (cnc5): its agent simulator (``shopfloor sim`` / ``demo``)
plays the same machine model as the OPC UA machines, on the shared factory clock, and the
imported baseline history of cnc5 carries the same codes the live connector stores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from config.loader import load_site
from config.models import SiteConfig
from connectors.simulators.base import SimClock
from connectors.simulators.factory import build_simulators
from connectors.simulators.history import generate_history
from connectors.simulators.machine import model_for
from connectors.simulators.mtconnect import MtconnectMachineSimulator
from edge.cli.demo import move_ports, packaged_demo
from tests.mqtt.helpers import RecordingSink
from tests.mtconnect.helpers import running

S = 1_000_000_000
TZ = ZoneInfo("Asia/Shanghai")
# a Tuesday in the demo calendar's day shift, and two hours later
T0 = int(dt.datetime(2026, 3, 10, 10, 30, tzinfo=TZ).timestamp()) * S
T1 = T0 + 2 * 3600 * S
SEED = 7


def _site() -> SiteConfig:
    """The demo site with cnc5's agent moved to a free port (as ``shopfloor demo`` does)."""
    site, moves = move_ports(load_site(packaged_demo()), is_free=lambda p: p != 50001)
    assert set(moves) == {50001}
    return site


def _pinned(now: list[int]) -> SimClock:
    """A factory clock that reads ``now[0]``: far ahead of it, held back by the ceiling."""
    return SimClock(1.0, now[0] + 10 * 365 * 86_400 * S, ceiling=lambda: now[0])


def _state(site: SiteConfig, value: float) -> str:
    state_map = site.device("cnc5").points[0].state_map
    assert state_map is not None
    return state_map[str(int(value))]


def _expected(state: str) -> str:
    return "idle" if state == "planned_stop" else state


def _last(sink: RecordingSink, point: str) -> float:
    return sink.of("cnc5", point)[-1].value


async def test_the_demo_agent_plays_the_machine_model_on_the_factory_clock(
    tmp_path: Path,
) -> None:
    site = _site()
    now = [T0]
    (sim,) = [s for s in build_simulators(site, SEED, _pinned(now)) if "mtconnect" in s.name]
    assert isinstance(sim, MtconnectMachineSimulator)
    model = model_for(site, site.device("cnc5"), SEED)
    sink = RecordingSink()
    await sim.start()
    try:
        only = site.model_copy(update={"devices": (site.device("cnc5"),)})
        async with running(only, tmp_path / "resume.json", sink):
            points = ("state", "parts", "good", "scrap")
            await sink.wait_for(lambda: all(sink.of("cnc5", p) for p in points))
            r = model.at(T0)
            assert _state(site, _last(sink, "state")) == _expected(r.state)
            assert (_last(sink, "good"), _last(sink, "scrap")) == (r.good, r.scrap)
            assert _last(sink, "parts") == r.good + r.scrap
            assert {s.ts for s in sink.samples} == {T0}  # stamped with the factory time

            now[0] = T1  # two factory hours later: the counts moved on
            r1 = model.at(T1)
            assert r1.good > r.good
            await sink.wait_for(lambda: _last(sink, "good") == r1.good)
            await sink.wait_for(lambda: _last(sink, "parts") == r1.good + r1.scrap)
            assert _state(site, _last(sink, "state")) == _expected(r1.state)
            assert max(s.ts for s in sink.samples) == T1  # never past the ceiling
        # the connector kept its position, in the agent's instance
        assert sim.agent is not None
        first = sim.agent.instance_id
        assert (tmp_path / "resume.json").read_text().startswith(f'{{"instance_id": {first},')
    finally:
        await sim.stop()
    now[0] = T1 + 60 * S
    await sim.start()  # a new agent instance: a resuming collector re-reads current
    try:
        assert sim.agent is not None
        assert sim.agent.instance_id == (T1 + 60 * S) // S != first
    finally:
        await sim.stop()


def test_the_baseline_history_of_cnc5_has_the_agents_codes() -> None:
    site = _site()
    day0 = int(dt.datetime(2025, 3, 10, tzinfo=TZ).timestamp()) * S
    day1 = day0 + 86_400 * S
    samples = [s for s in generate_history(site, SEED, day0, day1) if s.device == "cnc5"]
    assert {s.point for s in samples} == {"state", "parts", "good", "scrap"}
    model = model_for(site, site.device("cnc5"), SEED, "baseline")
    states = [s for s in samples if s.point == "state"]
    assert {_state(site, s.value) for s in states} == {"producing", "setup", "idle", "down"}
    for s in states:
        assert _state(site, s.value) == _expected(model.at(s.ts).state), s
    by_ts: dict[int, dict[str, float]] = {}
    for s in samples:
        by_ts.setdefault(s.ts, {})[s.point] = s.value
    last: dict[str, float] = {}
    checked = 0
    for ts in sorted(by_ts):  # PartCount ALL = GOOD + BAD after every change
        last.update(by_ts[ts])
        if "parts" in by_ts[ts]:
            assert last["parts"] == last["good"] + last["scrap"], (ts, last)
            checked += 1
    assert checked > 100
