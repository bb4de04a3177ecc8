"""Helpers of the Modbus tests: a recording Sink (our own contract) and site-file builders."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from config.models import SiteConfig
from connectors.base import Quality, Sample, SampleBlock


class Recorder:
    """A Sink that keeps everything it is given."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors: Counter[tuple[str, str]] = Counter()
        self.links: list[tuple[str, bool]] = []
        self.blocks: list[SampleBlock] = []

    def put(self, sample: Sample) -> None:
        self.samples.append(sample)

    def put_many(self, samples: Any) -> None:
        self.samples.extend(samples)

    def put_block(self, block: SampleBlock) -> None:
        self.blocks.append(block)
        self.put_many(block.samples())

    def link(self, device: str, connected: bool) -> None:
        self.links.append((device, connected))

    def error(self, device: str, kind: str) -> None:
        self.errors[(device, kind)] += 1

    def of(self, device: str, point: str) -> list[Sample]:
        return [s for s in self.samples if s.device == device and s.point == point]

    def latest(self, device: str, point: str) -> Sample | None:
        found = self.of(device, point)
        return found[-1] if found else None

    def good(self, device: str, point: str) -> list[Sample]:
        return [s for s in self.of(device, point) if s.quality == Quality.GOOD]

    async def wait(self, predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
        deadline = time.monotonic() + limit_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {limit_s}s")
            await asyncio.sleep(0.02)


def site(devices: list[dict[str, Any]]) -> SiteConfig:
    return SiteConfig.model_validate({"site": {"id": "t", "name": "test"}, "devices": devices})


def device(
    dev_id: str, port: int, points: list[dict[str, Any]], *, unit: int = 1, **modbus: Any
) -> dict[str, Any]:
    conn = {"host": "127.0.0.1", "port": port, "unit": unit, "poll_interval_ms": 100, **modbus}
    return {"id": dev_id, "name": dev_id, "modbus": conn, "points": points}


@contextlib.asynccontextmanager
async def running(coro: Any) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``coro`` as a task for the block; cancel it and wait for it afterwards."""
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
