"""The simulated CNC factory over OPC UA with the real connector: every demo point, browse,
and a server restart under the supervisor with the outage backfilled from history."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from config.loader import load_site_text
from config.models import SiteConfig
from config.opcua import OpcUaConnection
from connectors.base import Quality
from connectors.opcua import OpcUaConnector, build
from connectors.opcua.browse import browse, format_tree
from connectors.simulators.base import SimClock
from connectors.simulators.cnc import CncSimulator, endpoints_of
from edge.cli.main import main as cli_main
from edge.health import HealthTracker
from edge.supervisor import Backoff, Supervisor
from tests.opcua.helpers import RecordingSink
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
# a Wednesday morning in the plant (Asia/Shanghai): machines are working
START = int(dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp())
START_NS = START * 1_000_000_000
S = 1_000_000_000


def demo_site(port: int) -> SiteConfig:
    text = DEMO.read_text(encoding="utf-8").replace("48401", str(port))
    return load_site_text(text, str(DEMO)).with_source_dir(DEMO.parent)


def _sim(site: SiteConfig, clock: SimClock) -> CncSimulator:
    ((endpoint, devices),) = endpoints_of(site).items()
    return CncSimulator(site, endpoint, devices, seed=7, clock=clock, tick_s=0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def factory() -> AsyncIterator[tuple[SiteConfig, CncSimulator, SimClock]]:
    site = demo_site(free_port())
    clock = SimClock(speed=120, start_ns=START_NS)
    sim = _sim(site, clock)
    await sim.start()
    try:
        yield site, sim, clock
    finally:
        await sim.stop()


async def test_every_demo_point_arrives_with_the_factory_clock(
    factory: tuple[SiteConfig, CncSimulator, SimClock],
) -> None:
    site, sim, clock = factory
    (connector,) = build(site)
    expected = {(d.id, p.id) for d in site.devices if d.opcua for p in d.points}
    sink = RecordingSink()
    task = asyncio.create_task(connector.run(sink))
    try:
        await sink.wait(lambda: {(s.device, s.point) for s in sink.samples} >= expected)
        await sink.wait(lambda: len({s.value for s in sink.of("cnc1", "spindle_kw")}) >= 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(s.quality is Quality.GOOD for s in sink.samples)
    assert sink.errors == []
    now = clock.now_ns()
    assert all(START_NS <= s.ts <= now for s in sink.samples)
    states = {s.value for s in sink.of("cnc1", "state")}
    assert states <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert {s.value for s in sink.of("furnace1", "apc")} <= {0.0, 1.0}
    # the values are the model's at their source timestamps
    model = sim.models["cnc1"]
    for s in sink.of("cnc1", "good")[:5]:
        assert model.counts_at(s.ts)[0] == s.value


async def test_browse_shows_the_tree_for_the_site_file(
    factory: tuple[SiteConfig, CncSimulator, SimClock], capsys: pytest.CaptureFixture[str]
) -> None:
    _, sim, _ = factory
    nodes = await browse(OpcUaConnection(endpoint=sim.endpoint), depth=2)
    by_path = {n.browse_path: n for n in nodes}
    state = by_path["0:Objects/2:cnc1/2:State"]
    assert (state.node_id, state.data_type, state.node_class) == (
        "ns=2;s=cnc1.State",
        "Int32",
        "Variable",
    )
    assert by_path["0:Objects/2:furnace1/2:ApcMode"].data_type == "Boolean"
    assert by_path["0:Objects/2:cnc3/2:GoodCount"].data_type == "UInt32"
    text = format_tree(nodes)
    assert "ns=2;s=cnc4.SpindlePower" in text
    assert "Double" in text
    # the command line (it runs its own event loop: in a worker thread)
    code = await asyncio.to_thread(cli_main, ["browse", "opcua", sim.endpoint, "--depth", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "0:Objects/2:cnc2/2:ScrapCount" in out
    assert "ns=2;s=cnc2.ScrapCount" in out


async def test_server_restart_under_supervisor_resumes_and_backfills() -> None:
    site = demo_site(free_port())
    clock = SimClock(speed=300, start_ns=START_NS)
    sim = _sim(site, clock)
    await sim.start()
    (connector,) = build(site)
    assert isinstance(connector, OpcUaConnector)
    sink = RecordingSink()
    health = HealthTracker(connector.devices)
    sup = Supervisor([connector], sink, health, Backoff(initial_s=0.1, max_s=0.3))
    task = asyncio.create_task(sup.run())
    try:
        await sink.wait(lambda: len(sink.of("cnc1", "good")) >= 3, within=10, what="counts")
        stopped_at = clock.now_ns()
        await sim.stop()
        await asyncio.sleep(1.5)  # 7.5 factory minutes without a server
        await sim.start()
        restarted_at = clock.now_ns()
        await sink.wait(
            lambda: (
                connector.sessions >= 2
                and connector.backfilled > 0
                and any(s.ts > restarted_at for s in sink.of("cnc1", "good"))
            ),
            within=15,
            what="data after the restart",
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await sim.stop()
    assert connector.backfilled > 0
    assert health.get("cnc1").restarts >= 1
    goods = sorted(sink.of("cnc1", "good"), key=lambda s: s.ts)
    gap = [s for s in goods if stopped_at < s.ts < restarted_at]
    assert gap, "the outage was not backfilled"
    # no hole: inside the outage the record steps one part at a time (the history has every
    # change), and the whole record never goes backwards
    in_gap = [s.value for s in gap]
    assert all(b - a in (0.0, 1.0) for a, b in itertools.pairwise(in_gap)), in_gap
    values = [s.value for s in goods]
    assert all(b >= a for a, b in itertools.pairwise(values)), values
    assert values[-1] > values[0]
    # and every value is the model's at its source timestamp
    model = sim.models["cnc1"]
    assert all(model.counts_at(s.ts)[0] == s.value for s in gap)
