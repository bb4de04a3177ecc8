"""Runs every connector as a task and restarts it after a failure.

On :class:`ConnectorError` (``link_lost``), any other exception (``crash:<Name>``) or a run that
returned by itself (``exited``), the supervisor records the error kind for the connector's
devices, marks them disconnected, counts a restart, waits a capped exponential backoff with full
jitter (``uniform(0, min(backoff_max_s, backoff_initial_s * 2**attempt))``) and runs the
connector again. A run that lasted ``healthy_after_s`` resets the backoff. Cancellation always
propagates: the supervisor never swallows :class:`asyncio.CancelledError`.

On a failure the supervisor also writes one bad-quality sample (value NaN, status ``link_lost``,
stamped with ``time_ns()``, the gateway's clock) per configured point of the connector's devices
into the sink, so that the KPI engine sees the outage as offline even for points that only send
changes (subscribed OPC UA, MQTT). It does so once per outage: on the first failure after the
supervisor started and on every failure after the connector linked up again, not on every failed
retry while the link stays down. A clean stop (cancellation) writes no such samples.

A :class:`ConnectorError` may name its own error kind (a ``kind`` class attribute): an OPC UA
server refusing the user name or password raises one with kind ``auth_failed``. Such a failure
is counted under that kind, its markers carry that status (``auth_failed``, written once per
outage like ``link_lost``; again only if the kind changes), it is logged once per outage as a
clear line, and the retry waits ``backoff_max_s`` every time (no quick retries against a server
that refuses us).

A connector that has ``marked(samples)`` is told of the markers written for its points (the
OPC UA connector heals them when its history restores the gap).

``delays`` keeps the last :data:`DELAYS_KEPT` backoff waits (connector name, seconds).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from config.markers import AUTH_FAILED, LINK_LOST
from connectors.base import NAN, Connector, ConnectorError, Quality, Sample, Sink, now_ns
from edge.health import HealthTracker

log = logging.getLogger("shopfloor.supervisor")

DELAYS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    healthy_after_s: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait before restart number ``attempt`` (0-based)."""
        if attempt >= 64:
            return self.max_s
        return float(min(self.max_s, self.initial_s * (2**attempt)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, ceiling(attempt)]."""
        return rng.uniform(0.0, self.ceiling(attempt))


def error_kind(exc: BaseException | None) -> str:
    if exc is None:
        return "exited"
    if isinstance(exc, ConnectorError):
        kind = getattr(exc, "kind", None)
        return kind if isinstance(kind, str) and kind else LINK_LOST
    return f"crash:{type(exc).__name__}"


class _RunSink:
    """The sink of one connector run: passes everything through and notes a link-up."""

    __slots__ = ("error", "linked", "put", "put_block", "put_many", "sink", "when_stored")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.linked = False
        self.put = sink.put
        self.put_many = sink.put_many
        self.put_block = sink.put_block
        self.error = sink.error
        # the queue's durable hand-over (edge.queue), when the sink has it
        self.when_stored = getattr(sink, "when_stored", None)

    def link(self, device: str, connected: bool) -> None:
        if connected:
            self.linked = True
        self.sink.link(device, connected)


class Supervisor:
    """Keeps connectors running; ``run()`` returns only by cancellation."""

    def __init__(
        self,
        connectors: Sequence[Connector],
        sink: Sink,
        health: HealthTracker,
        backoff: Backoff,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        points: Mapping[str, Sequence[str]] | None = None,
        time_ns: Callable[[], int] = now_ns,
    ) -> None:
        self.connectors = tuple(connectors)
        self.sink = sink
        self.health = health
        self.backoff = backoff
        self.rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self.points: dict[str, tuple[str, ...]] = {d: tuple(ps) for d, ps in (points or {}).items()}
        self._time_ns = time_ns
        self.delays: deque[tuple[str, float]] = deque(maxlen=DELAYS_KEPT)

    async def run(self) -> None:
        """Run every connector until cancelled."""
        if not self.connectors:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for c in self.connectors:
                tg.create_task(self.keep_running(c), name=f"connector:{c.name}")

    def mark_lost(
        self, devices: Sequence[str], status: str = LINK_LOST, connector: object = None
    ) -> int:
        """One bad marker sample (NaN, gateway time, ``status``) per configured point of
        ``devices`` into the sink (``connector.marked`` is told, when it has it); returns how
        many."""
        ts = self._time_ns()
        samples = [
            Sample(d, p, ts, NAN, Quality.BAD, status)
            for d in devices
            for p in self.points.get(d, ())
        ]
        if samples:
            self.sink.put_many(samples)
            marked = getattr(connector, "marked", None)
            if callable(marked):
                marked(samples)
        return len(samples)

    async def keep_running(self, connector: Connector) -> None:
        attempt = 0
        marked: str | None = None  # the marker status the current outage already has
        while True:
            started = self._clock()
            failure: BaseException | None = None
            run_sink = _RunSink(self.sink)
            try:
                await connector.run(run_sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = exc
            kind = error_kind(failure)
            auth = kind == AUTH_FAILED
            status = AUTH_FAILED if auth else LINK_LOST
            new_outage = run_sink.linked or marked != status
            if new_outage:
                self.mark_lost(connector.devices, status, connector)
                marked = status
            if failure is None:
                log.warning("connector %s returned by itself; restarting", connector.name)
            elif auth and new_outage:
                log.error(
                    "connector %s: authentication refused (%s); check the user name and "
                    "password in the site file; retrying every %gs",
                    connector.name,
                    failure,
                    self.backoff.max_s,
                )
            elif auth:
                log.debug("connector %s: authentication refused again", connector.name)
            else:
                log.warning("connector %s failed (%s): %s", connector.name, kind, failure)
            self.health.connector_failed(connector.devices, kind)
            if self._clock() - started >= self.backoff.healthy_after_s:
                attempt = 0
            delay = self.backoff.max_s if auth else self.backoff.delay(attempt, self.rng)
            attempt += 1
            self.delays.append((connector.name, delay))
            await self._sleep(delay)
            self.health.restarted(connector.devices)
