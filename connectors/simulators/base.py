"""What every simulator offers, and the shared accelerated clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class SimClock:
    """Factory time that runs ``speed`` times faster than the wall clock.

    ``now_ns()`` is ``start_ns + (monotonic elapsed) * speed``; with ``speed=1`` and the
    default start it is the wall clock. All simulators of one factory share one clock, so the
    machines, meters and quality station agree on what time it is.

    With ``ceiling`` (a clock such as ``time.time_ns``) factory time never passes it: an
    accelerated factory started in the past catches up with the ceiling and from then on runs
    at its pace, so no device stamps data in the future of the gateway that collects it
    (whose checkpoints would otherwise be signed before the data's timestamps).
    """

    def __init__(
        self,
        speed: float = 1.0,
        start_ns: int | None = None,
        *,
        ceiling: Callable[[], int] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.ceiling = ceiling
        self._t0 = time.monotonic_ns()

    def now_ns(self) -> int:
        t = self.start_ns + int((time.monotonic_ns() - self._t0) * self.speed)
        return t if self.ceiling is None else min(t, self.ceiling())

    def wall_seconds(self, factory_seconds: float) -> float:
        """Wall-clock seconds that ``factory_seconds`` of factory time take."""
        return factory_seconds / self.speed


class Simulator(Protocol):
    name: str

    async def start(self) -> None:
        """Open the server socket(s) and start simulating; return once clients can connect."""
        ...

    async def stop(self) -> None:
        """Stop simulating and close every socket; idempotent."""
        ...

    def describe(self) -> str:
        """One line for the demo banner, e.g. 'Modbus TCP meters on 127.0.0.1:50201 (units 1-3)'."""
        ...
