"""Runs every connector as a task and restarts it after a failure.

On :class:`ConnectorError` (``link_lost``), any other exception (``crash:<Name>``) or a run that
returned by itself (``exited``), the supervisor records the error kind for the connector's
devices, marks them disconnected, counts a restart, waits a capped exponential backoff with full
jitter (``uniform(0, min(backoff_max_s, backoff_initial_s * 2**attempt))``) and runs the
connector again. A run that lasted ``healthy_after_s`` resets the backoff. Cancellation always
propagates: the supervisor never swallows :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from connectors.base import Connector, ConnectorError, Sink
from edge.health import HealthTracker

log = logging.getLogger("shopfloor.supervisor")


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
        return "link_lost"
    return f"crash:{type(exc).__name__}"


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
    ) -> None:
        self.connectors = tuple(connectors)
        self.sink = sink
        self.health = health
        self.backoff = backoff
        self.rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self.delays: list[tuple[str, float]] = []

    async def run(self) -> None:
        """Run every connector until cancelled."""
        if not self.connectors:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for c in self.connectors:
                tg.create_task(self.keep_running(c), name=f"connector:{c.name}")

    async def keep_running(self, connector: Connector) -> None:
        attempt = 0
        while True:
            started = self._clock()
            failure: BaseException | None = None
            try:
                await connector.run(self.sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = exc
            kind = error_kind(failure)
            if failure is None:
                log.warning("connector %s returned by itself; restarting", connector.name)
            else:
                log.warning("connector %s failed (%s): %s", connector.name, kind, failure)
            self.health.connector_failed(connector.devices, kind)
            if self._clock() - started >= self.backoff.healthy_after_s:
                attempt = 0
            delay = self.backoff.delay(attempt, self.rng)
            attempt += 1
            self.delays.append((connector.name, delay))
            await self._sleep(delay)
            self.health.restarted(connector.devices)
