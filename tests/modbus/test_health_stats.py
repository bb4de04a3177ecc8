"""The collector records each Modbus device's request figures in its health record (the
source of /metrics): requests, requests/s, latency, split spans, refused points."""

from __future__ import annotations

import asyncio
from pathlib import Path

from config.models import SiteConfig
from connectors.simulators.meters import MeterServer, UnitImage
from edge.runtime import Collector
from edge.store.sqlite import SqliteStore
from tests.support.net import free_port


async def test_health_extra_carries_modbus_request_figures(tmp_path: Path) -> None:
    # registers 0-3 and 5-8 exist, 4 does not: the combined read 0-8 is refused, isolated
    image = UnitImage(holding={a: a for a in (0, 1, 2, 3, 5, 6, 7, 8)})
    server = MeterServer({1: image}, port=free_port())
    await server.start()
    store = SqliteStore(tmp_path / "s.db")
    site = SiteConfig.model_validate(
        {
            "site": {"id": "t", "name": "t"},
            "runtime": {"health_interval_s": 0.1},
            "devices": [
                {
                    "id": "m",
                    "name": "m",
                    "modbus": {"host": "127.0.0.1", "port": server.port, "poll_interval_ms": 50},
                    "points": [
                        {"id": f"p{a}", "datatype": "uint16", "modbus": {"address": a}}
                        for a in range(9)
                    ],
                }
            ],
        }
    )
    collector = Collector(site, store=store)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        async with asyncio.timeout(20):
            await collector.ready.wait()
            writer = collector.writer
            assert writer is not None
            while True:
                records = {h.device: h for h in await writer.call(store.health)}
                extra = records["m"].extra if "m" in records else {}
                if extra.get("modbus_requests", 0) >= 10 and extra.get("modbus_latency_ms"):
                    break
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await server.stop()
    assert extra["modbus_split_spans"] == 1
    assert extra["modbus_refused_points"] == 1
    assert extra["modbus_isolations"] >= 1
    assert extra["modbus_requests_per_s"] > 0
    assert extra["modbus_latency_ms"] > 0
