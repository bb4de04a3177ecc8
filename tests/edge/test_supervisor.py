"""Supervisor: restarts with capped exponential backoff and full jitter, reset after a healthy
run, error kinds in health, cancellation always propagates."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

import pytest

from connectors.base import ConnectorError, Quality, Sample, Sink
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.supervisor import DELAYS_KEPT, Backoff, Supervisor, error_kind


class FakeConnector:
    """Our own Connector contract, scripted: each run executes the next step."""

    def __init__(self, name: str, steps: list[Callable[[Sink], object]]) -> None:
        self.name = name
        self.devices = (f"{name}-dev",)
        self.steps = steps
        self.runs = 0

    async def run(self, sink: Sink) -> None:
        step = self.steps[min(self.runs, len(self.steps) - 1)]
        self.runs += 1
        sink.link(self.devices[0], True)
        result = step(sink)
        if asyncio.iscoroutine(result):
            await result


def fail_link(sink: Sink) -> None:
    raise ConnectorError("socket closed")


def crash(sink: Sink) -> None:
    raise KeyError("boom")


async def forever(sink: Sink) -> None:
    sink.put(Sample("x-dev", "p", 1, 1.0))
    await asyncio.Event().wait()


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_backoff_ceiling_is_capped_exponential() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0, healthy_after_s=10)
    assert [b.ceiling(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.ceiling(10_000) == 4.0
    rng = random.Random(1)
    delays = [b.delay(3, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    # full jitter: spread over the whole range, not clustered at the cap
    assert min(delays) < 0.5
    assert max(delays) > 3.5


def test_error_kinds() -> None:
    assert error_kind(ConnectorError("x")) == "link_lost"
    assert error_kind(ValueError("x")) == "crash:ValueError"
    assert error_kind(None) == "exited"


async def test_restarts_with_growing_backoff_and_records_health() -> None:
    health = HealthTracker()
    sleeps: list[float] = []
    clock = FakeClock()

    async def fake_sleep(d: float) -> None:
        sleeps.append(d)
        await asyncio.sleep(0)

    conn = FakeConnector("m", [fail_link, crash, fail_link, fail_link, forever])
    sup = Supervisor(
        [conn],
        SampleQueue(10, on_link=health.link),
        health,
        Backoff(initial_s=1.0, max_s=4.0, healthy_after_s=100),
        rng=random.Random(7),
        sleep=fake_sleep,
        clock=clock,
    )
    task = asyncio.create_task(sup.run())
    for _ in range(200):
        await asyncio.sleep(0)
        if conn.runs >= 5:
            break
    assert conn.runs == 5
    rng = random.Random(7)
    expected = [rng.uniform(0, c) for c in (1.0, 2.0, 4.0, 4.0)]
    assert sleeps == pytest.approx(expected)
    h = health.get("m-dev")
    assert h.errors == {"link_lost": 3, "crash:KeyError": 1}
    assert h.restarts == 4
    assert h.connected is True  # the 5th run linked up again
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_backoff_resets_after_a_healthy_run() -> None:
    health = HealthTracker()
    clock = FakeClock()
    ceilings: list[float] = []
    backoff = Backoff(initial_s=1.0, max_s=64.0, healthy_after_s=30)

    class Rng(random.Random):
        def uniform(self, a: float, b: float) -> float:
            ceilings.append(b)
            return 0.0

    def long_then_fail(sink: Sink) -> None:
        clock.t += 31  # this run lasted longer than healthy_after_s
        raise ConnectorError("lost")

    conn = FakeConnector("m", [fail_link, fail_link, fail_link, long_then_fail, fail_link, forever])
    sup = Supervisor([conn], SampleQueue(10), health, backoff, rng=Rng(), clock=clock)
    task = asyncio.create_task(sup.run())
    for _ in range(200):
        await asyncio.sleep(0)
        if conn.runs >= 6:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ceilings == [1.0, 2.0, 4.0, 1.0, 2.0]


@pytest.mark.parametrize("where", ["running", "backing_off"])
async def test_cancellation_propagates(where: str) -> None:
    health = HealthTracker()
    started = asyncio.Event()

    async def swallow_attempt(sink: Sink) -> None:
        started.set()
        await asyncio.sleep(3600)

    def fail_then_mark(sink: Sink) -> None:
        started.set()
        raise ConnectorError("x")

    step = swallow_attempt if where == "running" else fail_then_mark
    conn = FakeConnector("m", [step])
    sup = Supervisor([conn], SampleQueue(10), health, Backoff(100.0, 100.0, 100.0))
    task = asyncio.create_task(sup.keep_running(conn))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert conn.runs == 1


async def test_a_connector_that_swallows_nothing_stops_with_the_supervisor() -> None:
    """Two connectors, one flapping: cancelling the supervisor stops both."""
    health = HealthTracker()
    q = SampleQueue(100, on_link=health.link)
    a = FakeConnector("a", [forever])
    b = FakeConnector("b", [fail_link])
    sup = Supervisor([a, b], q, health, Backoff(0.01, 0.02, 10.0))
    task = asyncio.create_task(sup.run())
    for _ in range(500):
        await asyncio.sleep(0.005)
        if b.runs >= 3:
            break
    assert b.runs >= 3
    assert a.runs == 1
    assert health.get("b-dev").errors["link_lost"] >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_delays_are_bounded() -> None:
    """A connector that fails for ever does not grow the supervisor's memory."""
    health = HealthTracker()

    async def no_sleep(d: float) -> None:
        await asyncio.sleep(0)

    conn = FakeConnector("m", [fail_link])
    sup = Supervisor([conn], SampleQueue(10), health, Backoff(0.0, 0.0, 100.0), sleep=no_sleep)
    task = asyncio.create_task(sup.keep_running(conn))
    n = DELAYS_KEPT + 50
    for _ in range(20 * n):
        await asyncio.sleep(0)
        if conn.runs > n:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.runs > n
    assert len(sup.delays) == DELAYS_KEPT
    assert health.get("m-dev").restarts >= n


async def test_link_loss_writes_one_bad_sample_per_point_once_per_outage() -> None:
    """link_lost samples: every configured point of the lost devices, gateway time, NaN, bad;
    not again while the link stays down; again after the connector linked up and failed."""
    health = HealthTracker()
    q = SampleQueue(100, on_link=health.link)
    ticks = iter(range(1000, 10**6, 1000))

    def no_link_fail(sink: Sink) -> None:
        raise ConnectorError("refused")  # never linked up in this run

    class Conn(FakeConnector):
        async def run(self, sink: Sink) -> None:
            step = self.steps[min(self.runs, len(self.steps) - 1)]
            self.runs += 1
            if step is not no_link_fail:
                sink.link(self.devices[0], True)
            result = step(sink)
            if asyncio.iscoroutine(result):
                await result

    conn = Conn("m", [fail_link, no_link_fail, no_link_fail, crash, forever])

    async def no_sleep(d: float) -> None:
        await asyncio.sleep(0)

    sup = Supervisor(
        [conn],
        q,
        health,
        Backoff(0.0, 0.0, 100.0),
        sleep=no_sleep,
        points={"m-dev": ["state", "count"], "other": ["x"]},
        time_ns=lambda: next(ticks),
    )
    task = asyncio.create_task(sup.keep_running(conn))
    for _ in range(500):
        await asyncio.sleep(0)
        if conn.runs >= 5 and len(q) >= 5:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = q.get_nowait(100)
    lost = [s for s in got if s.status == "link_lost"]
    # run 1 (linked, lost) -> 2 samples; runs 2-3 (still down) -> none; run 4 (linked, crash) -> 2
    assert [(s.device, s.point) for s in lost] == [("m-dev", "state"), ("m-dev", "count")] * 2
    assert all(s.quality == Quality.BAD and math.isnan(s.value) for s in lost)
    assert [s.ts for s in lost] == [1000, 1000, 2000, 2000]
    assert [s for s in got if s.status != "link_lost"] == [Sample("x-dev", "p", 1, 1.0)]


async def test_first_failure_without_link_marks_the_points_once() -> None:
    """A gateway started during an outage records it once (the store may still hold the last
    state of the previous run); cancellation writes nothing."""
    health = HealthTracker()
    q = SampleQueue(100)

    async def no_sleep(d: float) -> None:
        await asyncio.sleep(0)

    class NeverUp(FakeConnector):
        async def run(self, sink: Sink) -> None:
            self.runs += 1
            raise ConnectorError("refused")

    conn = NeverUp("m", [])
    sup = Supervisor(
        [conn], q, health, Backoff(0.0, 0.0, 100.0), sleep=no_sleep, points={"m-dev": ["s"]}
    )
    task = asyncio.create_task(sup.keep_running(conn))
    for _ in range(200):
        await asyncio.sleep(0)
        if conn.runs >= 5:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.runs >= 5
    assert [(s.point, s.status) for s in q.get_nowait(100)] == [("s", "link_lost")]

    # a clean stop of a running connector writes no link_lost sample
    q2 = SampleQueue(100)
    up = FakeConnector("u", [forever])
    sup2 = Supervisor([up], q2, health, Backoff(0.0, 0.0, 100.0), points={"u-dev": ["s"]})
    task2 = asyncio.create_task(sup2.keep_running(up))
    for _ in range(100):
        await asyncio.sleep(0)
        if len(q2):
            break
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    assert [s.status for s in q2.get_nowait(100)] == [""]


def test_health_does_not_count_link_lost_markers_as_readings() -> None:
    health = HealthTracker()
    marker = Sample("d", "s", 50, math.nan, Quality.BAD, "link_lost")
    health.observe("d", [Sample("d", "s", 10, 1.0), marker])
    h = health.get("d")
    assert (h.samples, h.last_sample_ts, h.last_good_ts, h.errors) == (1, 10, 10, {})
    health.observe("d", [marker])
    health.observe("d", [Sample("d", "s", 60, math.nan, Quality.BAD, "timeout")])
    assert (h.samples, h.last_sample_ts, h.errors) == (2, 60, {"bad:timeout": 1})
