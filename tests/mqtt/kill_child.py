"""Child process of the MQTT kill -9 test: the real collector (supervisor, queue, writer,
SqliteStore) with one MQTT device (QoS 1, persistent session). The writer waits up to 5 s for
a fuller batch, so a message acknowledged on hand-over (not on storage) would still be in memory
when the parent kills this process. Prints ``up`` once the broker link is up, followed by the
pids of the connector worker processes when ``workers`` (runtime.workers) is given.

    python -m tests.mqtt.kill_child <port> <client id> <store path> [workers]
"""

from __future__ import annotations

import asyncio
import sys

from config.models import SiteConfig
from edge.runtime import Collector
from edge.store.sqlite import SqliteStore


def site(port: int, client_id: str, workers: int = 0) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": {"id": "k", "name": "kill"},
            "runtime": {
                "flush_interval_ms": 5000,
                "batch_max_samples": 100_000,
                "workers": workers,
            },
            "devices": [
                {
                    "id": "k1",
                    "name": "k1",
                    "mqtt": {"host": "127.0.0.1", "port": port, "qos": 1, "client_id": client_id},
                    "points": [
                        {
                            "id": "n",
                            "mqtt": {"topic": "k/k1/n", "pointer": "/n", "ts_pointer": "/ts"},
                        }
                    ],
                }
            ],
        }
    )


async def main(port: int, client_id: str, path: str, workers: int) -> None:
    collector = Collector(site(port, client_id, workers), store=SqliteStore(path))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    while not collector.health.get("k1").connected:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    sup = collector.supervisor
    pids = [getattr(c, "pid", None) for c in sup.connectors] if sup is not None else []
    print("up", *[p for p in pids if p is not None], flush=True)
    await task  # until killed


if __name__ == "__main__":
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], workers))
