"""Honest scheduling (issue 16): a poll that cannot keep its period skips the missed slots,
counts them per device (health extra / metrics: modbus_skipped_polls, modbus_poll_period_ms),
keeps the phase of the poll grid, and is logged once per episode. Clocks are pinned."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connectors.modbus import ModbusConnector
from connectors.modbus.cadence import Cadence
from connectors.modbus.connector import EPISODE_END_POLLS
from connectors.simulators.meters import MeterServer, UnitImage
from edge.store.base import DeviceHealth
from gateway.metrics_prom import HealthCollector
from tests.modbus.helpers import Recorder, device, running, site
from tests.support.net import free_port


def test_cadence_skips_counts_and_keeps_the_phase() -> None:
    cad = Cadence(1.0, 100.0)
    assert cad.done(100.4) == 0  # on time
    assert (cad.due, cad.overrunning) == (101.0, False)
    # the poll due at 101 ends at 103.2: slots 102 and 103 are skipped, next at 104
    assert cad.done(103.2) == 2
    assert (cad.due, cad.skipped, cad.episodes, cad.overrunning) == (104.0, 2, 1, True)
    assert cad.done(105.5) == 1  # still overrunning: the same episode
    assert (cad.due, cad.skipped, cad.episodes) == (106.0, 3, 1)
    assert cad.done(106.3) == 0  # keeps its period again: the episode ends
    assert (cad.due, cad.overrunning) == (107.0, False)
    # ends exactly on a slot: 108 was missed, the poll at 109 runs at once (on its slot)
    assert cad.done(109.0) == 1
    assert (cad.due, cad.skipped, cad.episodes, cad.polls) == (109.0, 4, 2, 5)
    with pytest.raises(ValueError):
        Cadence(0.0, 0.0)


class SteppingClock:
    """Monotonic seconds that advance ``step`` on every reading (a slow line or device)."""

    def __init__(self, step: float) -> None:
        self.t = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


async def test_overrunning_polls_are_counted_per_device_and_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MeterServer({1: UnitImage(holding={a: a for a in range(4)})}, port=free_port())
    await server.start()
    interval = 0.02
    clock = SteppingClock(2.5 * interval)  # every poll appears to take 2.5 intervals
    points = [{"id": f"p{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(4)]
    cfg = site([device("m", server.port, points, poll_interval_ms=20)])
    conn = ModbusConnector(list(cfg.devices), clock=clock)
    sink = Recorder()
    caplog.set_level(logging.INFO, logger="shopfloor.modbus")
    try:
        async with running(conn.run(sink)):
            conn.device_stats()  # opens the window of the actual period
            await sink.wait(lambda: conn.per_device["m"].polls >= 5)
            job = conn._jobs[0]
            assert job.cadence is not None
            stats = conn.device_stats()["m"]
            assert stats["modbus_skipped_polls"] == conn.per_device["m"].skipped
            assert conn.per_device["m"].skipped >= conn.per_device["m"].polls  # >= 1 each
            assert stats["modbus_poll_period_ms"] > 20  # actual period longer than asked
            # the grid keeps its phase: every due time is start + k * interval
            k = (job.cadence.due - 1000.0) / interval
            assert abs(k - round(k)) < 1e-6
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "skipped" in warnings[0].getMessage()
            # the line recovers: polls keep their period, the episode ends (one info line)
            clock.step = interval / 10
            polls = conn.per_device["m"].polls
            await sink.wait(lambda: conn.per_device["m"].polls >= polls + 1)  # the one in flight
            polls, skipped = conn.per_device["m"].polls, conn.per_device["m"].skipped
            await sink.wait(lambda: conn.per_device["m"].polls >= polls + 3)
            assert conn.per_device["m"].skipped == skipped
            # the episode ends after EPISODE_END_POLLS polls on time in a row: one info line
            assert not [r for r in caplog.records if "again" in r.getMessage()]
            await sink.wait(
                lambda: conn.per_device["m"].polls >= polls + EPISODE_END_POLLS + 1, limit_s=10
            )
            infos = [r for r in caplog.records if "again" in r.getMessage()]
            assert len(infos) == 1
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        await server.stop()


def test_metrics_show_skipped_polls_and_the_actual_period() -> None:
    cfg = site([device("m", 502, [{"id": "p", "modbus": {"address": 0}}])])
    hc = HealthCollector(cfg)
    extra = {"modbus_skipped_polls": 7, "modbus_poll_period_ms": 1250.0}
    hc.update([DeviceHealth(device="m", extra=extra, updated_ts=1)])
    registry = CollectorRegistry()
    registry.register(hc)
    text = generate_latest(registry).decode()
    lv = '{connector="modbus",device="m"}'
    assert f"shopfloor_modbus_skipped_polls_total{lv} 7.0" in text
    assert f"shopfloor_modbus_poll_period_seconds{lv} 1.25" in text
