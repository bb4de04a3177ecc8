"""The MTConnect connector against the agent simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.markers import LINK_LOST
from config.mtconnect import DEFAULT_STATE_MAP
from connectors.base import ConnectorError, Quality
from connectors.mtconnect import MtconnectConnector
from connectors.mtconnect.documents import AgentError, parse_streams
from connectors.simulators.mtconnect import MtconnectAgent
from tests.mqtt.helpers import RecordingSink
from tests.mtconnect.helpers import T0, S, running, site


@pytest.fixture
async def agent() -> AsyncIterator[MtconnectAgent]:
    a = MtconnectAgent(clock=lambda: T0, buffer_size=64)
    await a.start()
    yield a
    await a.stop()


def values(sink: RecordingSink, point: str) -> list[tuple[int, float]]:
    return [(s.ts, s.value) for s in sink.of("cnc1", point) if s.quality == Quality.GOOD]


async def test_execution_mode_and_part_counts(agent: MtconnectAgent, tmp_path: Path) -> None:
    agent.set("avail", "AVAILABLE", T0 + 1 * S)
    agent.set("mode", "AUTOMATIC", T0 + 1 * S)
    agent.set("exec", "ACTIVE", T0 + 2 * S)
    for n in range(1, 4):
        agent.set("pc_all", n, T0 + (10 + n) * S)
    agent.set("pc_good", 2, T0 + 13 * S)
    agent.set("pc_bad", 1, T0 + 13 * S)
    agent.set("spindle", 1200.5, T0 + 14 * S)
    sink = RecordingSink()
    cfg = site(agent.url)
    async with running(cfg, tmp_path / "r.json", sink):
        await sink.wait_for(lambda: bool(values(sink, "spindle")))
        agent.set("mode", "MANUAL", T0 + 20 * S)  # jogging: setup whatever execution says
        agent.set("exec", "FEED_HOLD", T0 + 21 * S)
        await sink.wait_for(lambda: len(values(sink, "state")) == 3)
    smap = cfg.devices[0].point("state").state_map
    assert smap == DEFAULT_STATE_MAP
    states = [(ts, smap[str(int(v))]) for ts, v in values(sink, "state")]
    assert states == [(T0 + 2 * S, "producing"), (T0 + 20 * S, "setup"), (T0 + 21 * S, "setup")]
    assert values(sink, "total") == [(T0 + 13 * S, 3.0)]  # current: the value in force
    assert values(sink, "good") == [(T0 + 13 * S, 2.0)]
    assert values(sink, "scrap") == [(T0 + 13 * S, 1.0)]
    assert values(sink, "spindle") == [(T0 + 14 * S, 1200.5)]
    assert sink.up("cnc1") is True
    assert not sink.errors


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
async def test_every_observation_while_running_in_sequence(
    agent: MtconnectAgent, tmp_path: Path, streaming: bool
) -> None:
    sink = RecordingSink()
    cfg = site(agent.url, count=7, streaming=streaming)
    async with running(cfg, tmp_path / "r.json", sink):
        await sink.wait_for(lambda: ("cnc1", True) in sink.links)
        for n in range(1, 41):  # more than one request's count: paged by from/nextSequence
            agent.set("pc_all", n, T0 + n * S)
        await sink.wait_for(lambda: any(v == 40.0 for _, v in values(sink, "total")))
    assert values(sink, "total") == [(T0 + n * S, float(n)) for n in range(1, 41)]


async def test_unavailable_is_a_link_lost_marker(agent: MtconnectAgent, tmp_path: Path) -> None:
    agent.set("avail", "AVAILABLE", T0 + S)
    agent.set("exec", "READY", T0 + S)
    agent.set("pc_all", 5, T0 + S)
    sink = RecordingSink()
    async with running(site(agent.url), tmp_path / "r.json", sink):
        await sink.wait_for(lambda: bool(values(sink, "total")))
        agent.set("avail", "UNAVAILABLE", T0 + 50 * S)
        await sink.wait_for(lambda: sink.up("cnc1") is False)
        agent.set("avail", "AVAILABLE", T0 + 60 * S)
        agent.set("pc_all", 6, T0 + 61 * S)
        await sink.wait_for(lambda: len(values(sink, "total")) == 2)
    marks = [s for s in sink.samples if s.status == LINK_LOST and s.ts == T0 + 50 * S]
    assert {s.point for s in marks} == {"state", "total", "good", "scrap", "spindle"}
    assert all(s.quality == Quality.BAD and math.isnan(s.value) for s in marks)
    assert sink.up("cnc1") is True
    # the point's own UNAVAILABLE (never set since the agent started) is a marker too
    assert [s.status for s in sink.of("cnc1", "spindle")] == [LINK_LOST, LINK_LOST]


async def test_restart_resumes_from_the_stored_sequence(
    agent: MtconnectAgent, tmp_path: Path
) -> None:
    resume = tmp_path / "r.json"
    cfg = site(agent.url)
    first = RecordingSink()
    async with running(cfg, resume, first):
        agent.set("pc_all", 1, T0 + 1 * S)
        await sink_has(first, "total", 1.0)
        agent.set("pc_all", 2, T0 + 2 * S)
        await sink_has(first, "total", 2.0)
    saved = json.loads(resume.read_text())
    assert saved["instance_id"] == agent.instance_id
    # the collector is down: three parts are made and the machine changes state
    agent.set("pc_all", 3, T0 + 3 * S)
    agent.set("exec", "ACTIVE", T0 + 3 * S)
    agent.set("pc_all", 4, T0 + 4 * S)
    agent.set("pc_all", 5, T0 + 5 * S)
    second = RecordingSink()
    async with running(cfg, resume, second):
        await sink_has(second, "total", 5.0)
    got = values(second, "total")
    # nothing of the outage is missed, each with the agent's time; at most the last request
    # before the stop is read again (the same samples)
    assert [(T0 + n * S, float(n)) for n in (3, 4, 5)] == got[-3:]
    assert set(got) <= {(T0 + n * S, float(n)) for n in range(1, 6)}
    assert values(second, "state") == [(T0 + 3 * S, 2.0)]
    assert not second.errors


async def sink_has(sink: RecordingSink, point: str, value: float) -> None:
    await sink.wait_for(lambda: any(v == value for _, v in values(sink, point)))


async def test_resume_position_out_of_the_buffer_reads_current(
    agent: MtconnectAgent, tmp_path: Path
) -> None:
    resume = tmp_path / "r.json"
    resume.write_text(json.dumps({"instance_id": agent.instance_id, "next": 2}))
    for n in range(1, 100):  # more than the buffer (64): sequence 2 is gone
        agent.set("pc_all", n, T0 + n * S)
    sink = RecordingSink()
    async with running(site(agent.url), resume, sink):
        await sink_has(sink, "total", 99.0)
    assert values(sink, "total") == [(T0 + 99 * S, 99.0)]
    assert sink.errors[("cnc1", "resume_gap")] == 1


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
async def test_agent_restart_is_a_gap_then_current(
    agent: MtconnectAgent, tmp_path: Path, streaming: bool
) -> None:
    sink = RecordingSink()
    async with running(site(agent.url, streaming=streaming), tmp_path / "r.json", sink):
        agent.set("pc_all", 7, T0 + S)
        await sink_has(sink, "total", 7.0)
        agent.restart()
        agent.set("pc_all", 8, T0 + 2 * S)
        await sink_has(sink, "total", 8.0)
        agent.set("pc_all", 9, T0 + 3 * S)
        await sink_has(sink, "total", 9.0)
    assert sink.errors[("cnc1", "sequence_gap")] >= 1
    assert values(sink, "total") == [(T0 + S, 7.0), (T0 + 2 * S, 8.0), (T0 + 3 * S, 9.0)]


async def test_a_bad_word_costs_only_itself(agent: MtconnectAgent, tmp_path: Path) -> None:
    sink = RecordingSink()
    async with running(site(agent.url), tmp_path / "r.json", sink):
        await sink.wait_for(lambda: ("cnc1", True) in sink.links)
        agent.set("exec", "DANCING", T0 + S)
        agent.set("pc_all", "twelve", T0 + S)
        agent.set("pc_all", 12, T0 + 2 * S)
        agent.set("exec", "ACTIVE", T0 + 2 * S)
        await sink.wait_for(lambda: bool(values(sink, "state")) and bool(values(sink, "total")))
    assert sink.errors[("cnc1", "malformed:unknown_word")] == 1
    assert sink.errors[("cnc1", "malformed:not_number")] == 1
    assert values(sink, "total") == [(T0 + 2 * S, 12.0)]
    assert values(sink, "state") == [(T0 + 2 * S, 2.0)]


async def test_a_point_the_probe_lacks_stops_with_one_line(
    agent: MtconnectAgent, tmp_path: Path
) -> None:
    cfg = site(agent.url, [{"id": "x", "mtconnect": {"type": "PART_COUNT"}}])
    conn = MtconnectConnector(cfg.devices[0], tmp_path / "r.json")
    with pytest.raises(ConnectorError, match="matches 3 data items") as err:
        await conn.run(RecordingSink())
    assert "\n" not in str(err.value)
    cfg = site(agent.url, [{"id": "x", "mtconnect": {"data_item": "nope"}}])
    with pytest.raises(ConnectorError, match="has no data item 'nope'"):
        await MtconnectConnector(cfg.devices[0], tmp_path / "r.json").run(RecordingSink())


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
async def test_buffer_overrun_while_running_is_a_gap_then_current(
    tmp_path: Path, streaming: bool
) -> None:
    agent = MtconnectAgent(clock=lambda: T0, buffer_size=10)
    await agent.start()
    try:
        sink = RecordingSink()
        async with running(site(agent.url, streaming=streaming), tmp_path / "r.json", sink):
            await sink.wait_for(lambda: ("cnc1", True) in sink.links)
            for n in range(1, 31):  # at once: the 10-observation buffer rolls past the position
                agent.set("pc_all", n, T0 + n * S)
            await sink_has(sink, "total", 30.0)
    finally:
        await agent.stop()
    assert sink.errors[("cnc1", "sequence_gap")] == 1
    # what the buffer still held is lost to the gap; the value in force comes from current
    assert values(sink, "total") == [(T0 + 30 * S, 30.0)]


def test_out_of_range_is_an_agent_error() -> None:
    agent = MtconnectAgent(clock=lambda: T0, buffer_size=10)
    for n in range(20):
        agent.set("pc_all", n)
    status, body = agent.sample(3, 5)
    assert status == 400
    with pytest.raises(AgentError, match="OUT_OF_RANGE"):
        parse_streams(body.encode())


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
async def test_agent_gone_raises_connector_error(
    agent: MtconnectAgent, tmp_path: Path, streaming: bool
) -> None:
    sink = RecordingSink()
    cfg = site(agent.url, streaming=streaming)
    conn = MtconnectConnector(cfg.devices[0], tmp_path / "r.json")
    task = asyncio.create_task(conn.run(sink))
    await sink.wait_for(lambda: ("cnc1", True) in sink.links)
    await agent.stop()
    with pytest.raises(ConnectorError, match=r"sample (stream )?failed") as err:
        await task
    assert "\n" not in str(err.value)
