"""Helpers of the MTConnect tests: a site with one MTConnect CNC, a running connector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from config.models import SiteConfig
from connectors.mtconnect import MtconnectConnector
from tests.mqtt.helpers import RecordingSink

T0 = 1_800_000_000 * 1_000_000_000  # 2027-01-15T08:00:00Z: a pinned agent clock
S = 1_000_000_000

POINTS: list[dict[str, Any]] = [
    {"id": "state", "role": "state", "mtconnect": {"type": "EXECUTION"}},
    {"id": "total", "role": "count_total", "mtconnect": {"type": "PART_COUNT", "sub_type": "ALL"}},
    {"id": "good", "role": "count_good", "mtconnect": {"type": "PART_COUNT", "sub_type": "GOOD"}},
    {"id": "scrap", "role": "count_scrap", "mtconnect": {"type": "PART_COUNT", "sub_type": "BAD"}},
    {"id": "spindle", "unit": "rpm", "mtconnect": {"data_item": "spindle"}},
]


def site(url: str, points: list[dict[str, Any]] | None = None, **conn: Any) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": {"id": "t", "name": "t"},
            "devices": [
                {
                    "id": "cnc1",
                    "name": "CNC 1",
                    "mtconnect": {"url": url, "device": "cnc1", "interval_ms": 20, **conn},
                    "points": POINTS if points is None else points,
                }
            ],
        }
    )


@contextlib.asynccontextmanager
async def running(
    cfg: SiteConfig, resume: Path, sink: RecordingSink
) -> AsyncIterator[MtconnectConnector]:
    conn = MtconnectConnector(cfg.devices[0], resume, resume_lag_s=0.0)
    task = asyncio.create_task(conn.run(sink))
    try:
        yield conn
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
