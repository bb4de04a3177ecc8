"""A retained message (sent again on every subscription) with a payload time is stored once,
however many times the gateway starts: checked against the store, not the process's memory."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from connectors.mqtt import MqttConnector, build
from edge.queue import SampleQueue
from edge.store.sqlite import SqliteStore
from edge.writer import Writer
from tests.mqtt.helpers import device, mqtt_site, point
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto_pub")

T0 = 1_796_000_000_000  # epoch ms (fixed)


def _connector(port: int) -> MqttConnector:
    (conn,) = build(
        mqtt_site(
            [
                device(
                    "r1",
                    port,
                    [point("n", "dd/r1/n", "/n", ts_pointer="/ts")],
                    client_id="t-dedupe",
                    clean_session=True,  # a new session: the broker sends the retained value
                )
            ]
        )
    )
    assert isinstance(conn, MqttConnector)
    return conn


async def _run_once(port: int, path: Path) -> int:
    """One gateway run until the retained message is decoded and written; returns the number
    of duplicates the writer left out."""
    store = SqliteStore(path)
    q = SampleQueue(1000)
    w = Writer(store, q, flush_interval_ms=5)
    writer = asyncio.create_task(w.run())
    conn = _connector(port)
    task = asyncio.create_task(conn.run(q))
    try:
        async with asyncio.timeout(15):
            while conn.acked < 1:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        q.close()
        await writer
        await w.close()
    assert w.dedupe is not None
    return w.dedupe.dropped


async def test_a_retained_message_is_stored_once_over_three_runs(
    broker: Mosquitto, tmp_path: Path
) -> None:
    # mosquitto_pub (an independent client) leaves the retained value at the broker
    args = ["-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-r", "-t", "dd/r1/n"]
    doc = json.dumps({"n": 5, "ts": T0})
    await asyncio.to_thread(
        subprocess.run, ["mosquitto_pub", *args, "-m", doc], check=True, timeout=30
    )
    path = tmp_path / "s.db"
    dropped = [await _run_once(broker.port, path) for _ in range(3)]
    assert dropped == [0, 1, 1]
    store = SqliteStore(path, readonly=True)
    s = store.read("r1", "n", 0, 2**62)
    store.close()
    assert list(zip(s.ts.tolist(), s.values.tolist(), strict=True)) == [(T0 * 1_000_000, 5.0)]
