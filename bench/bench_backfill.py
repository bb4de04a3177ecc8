"""Backfill rate (samples/s from HistoryRead) and time from device back to data flowing.

1. **Backfill**: an asyncua server (in this process) holds ``--points`` historized Double
   variables with ``--values`` history values each (asyncua's in-memory history, answers of at
   most 10,000 values); the real :class:`connectors.opcua.OpcUaConnector` resumes every point
   from a stored sample older than the whole history (as after a restart of the collector,
   :meth:`OpcUaConnector.resume`) and reads the gap back (ReadRawModified, 1,000 values per
   node and request, continuation, MaxNodesPerHistoryReadData). Figure: history values put
   into the sink per second, from the start of the connector's run (connect, subscribe, wait
   for the initial values, HistoryRead) to the last value.

2. **Recovery**: the device goes away for ``--down`` seconds and comes back; the supervisor
   with the default backoff (``runtime.backoff_initial_s`` 0.5 s, ``backoff_max_s`` 30 s, full
   jitter) restarts the connector. Figure: seconds from the device accepting connections
   again to the first new sample in the sink, per trial (median and max), for OPC UA (asyncua
   server, one subscribed variable changing every 100 ms) and Modbus TCP (pymodbus server,
   one holding register polled every 100 ms). The backoff's random draws are seeded per
   trial (``--seed``), so the figures repeat. For MQTT the device is the broker (a private
   mosquitto on a free loopback port with a temporary directory and persistence,
   ``tests/support/mosquitto.py``, stopped and restarted on the same port so that the
   connector's persistent session survives); a paho publisher sends a plain numeric payload
   with QoS 1 every 100 ms while it is connected (it retries every 0.1 s). The connector
   keeps running through a short outage and reconnects by itself with paho's backoff (the site
   file's defaults ``reconnect_delay_s`` 1 s doubling up to ``reconnect_max_delay_s`` 30 s, no
   jitter); the supervisor restarts it only after ``reconnect_timeout_s`` (120 s).

    .venv/bin/python bench/bench_backfill.py                      # backfill + recovery
    .venv/bin/python bench/bench_backfill.py --only backfill --points 20 --values 20000
    .venv/bin/python bench/bench_backfill.py --only recovery --down 10 --trials 5
    .venv/bin/python bench/bench_backfill.py --only recovery --protocol mqtt --trials 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
import yaml
from asyncua import ua
from asyncua.server.history import HistoryDict
from paho.mqtt.enums import CallbackAPIVersion

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import Connector, Quality, Sample, SampleBlock
from connectors.modbus import build as build_modbus
from connectors.mqtt import build as build_mqtt
from connectors.opcua import OpcUaConnector
from connectors.opcua import build as build_opcua
from connectors.simulators.cnc import new_server, release_standard_nodes, stop_server
from connectors.simulators.meters import MeterServer, UnitImage
from edge.health import HealthTracker
from edge.store.base import Newest
from edge.supervisor import Backoff, Supervisor
from tests.support.mosquitto import Mosquitto
from tests.support.net import free_port

BASE = dt.datetime(2025, 6, 2, 8, 0, tzinfo=dt.UTC)
BASE_NS = int(BASE.timestamp()) * 1_000_000_000


class Counting:
    """A Sink that counts samples and notes when each kind arrived."""

    def __init__(self) -> None:
        self.n = 0
        self.last_at = 0.0
        self.first_new_at: float | None = None
        self.since: float = float("inf")

    def put(self, sample: Sample) -> None:
        self.put_many([sample])

    def put_many(self, samples: Iterable[Sample]) -> None:
        now = time.perf_counter()
        got = [s for s in samples if s.quality is Quality.GOOD]
        self.n += len(got)
        self.last_at = now
        if got and self.first_new_at is None and now >= self.since:
            self.first_new_at = now

    def put_block(self, block: SampleBlock) -> None:
        self.put_many(block.samples())

    def link(self, device: str, connected: bool) -> None:
        pass

    def error(self, device: str, kind: str) -> None:
        pass


def _site(devices: list[dict[str, Any]]) -> SiteConfig:
    doc = {"version": 1, "site": {"id": "b", "name": "bench"}, "devices": devices}
    return load_site_text(yaml.safe_dump(doc))


# ------------------------------------------------------------------------------ backfill
async def backfill_run(points: int, values: int) -> tuple[float, int]:
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/bench"
    server = new_server()
    await server.init()
    server.set_endpoint(endpoint)
    history = HistoryDict()
    server.iserver.history_manager.set_storage(history)
    idx = await server.register_namespace("urn:bench")
    folder = await server.nodes.objects.add_folder(ua.NodeId("B", idx), ua.QualifiedName("B", idx))
    for p in range(points):
        nid = ua.NodeId(f"B.P{p}", idx)
        await folder.add_variable(nid, ua.QualifiedName(f"P{p}", idx), ua.Variant(0.0))
        await server.write_attribute_value(
            nid, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)), ua.AttributeIds.Historizing
        )
        await history.new_historized_node(nid, None, 0)
        series = history._datachanges[nid]
        for i in range(1, values + 1):
            t = BASE + dt.timedelta(seconds=i)
            series.append(ua.DataValue(ua.Variant(float(i)), SourceTimestamp=t, ServerTimestamp=t))
        # the current value: the last one (the subscription's initial value bounds the gap)
        await server.write_attribute_value(nid, series[-1])
    await server.start()
    try:
        site = _site(
            [
                {
                    "id": "m",
                    "name": "m",
                    "opcua": {"endpoint": endpoint, "publishing_interval_ms": 100},
                    "points": [
                        {"id": f"p{p}", "opcua": {"node_id": f"ns={idx};s=B.P{p}"}}
                        for p in range(points)
                    ],
                }
            ]
        )
        (connector,) = build_opcua(site)
        assert isinstance(connector, OpcUaConnector)
        stored = {
            ("m", f"p{p}"): Newest(
                Sample("m", f"p{p}", BASE_NS, 0.0), Sample("m", f"p{p}", BASE_NS, 0.0)
            )
            for p in range(points)
        }
        connector.resume(stored, BASE_NS)
        sink = Counting()
        want = points * (values - 1)  # the last value is the initial one (not history)
        t0 = time.perf_counter()
        task = asyncio.create_task(connector.run(sink))
        while True:  # polled: the figure is the last value's arrival, not this loop's
            if connector.backfilled >= want or task.done():
                break
            await asyncio.sleep(0.01)
        elapsed = sink.last_at - t0
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return elapsed, connector.backfilled
    finally:
        await server.stop()
        release_standard_nodes()


# ------------------------------------------------------------------------------ recovery
class OpcUaDevice:
    def __init__(self, port: int) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/dev"
        self.server: Any = None
        self.task: asyncio.Task[None] | None = None

    def site(self) -> SiteConfig:
        return _site(
            [
                {
                    "id": "m",
                    "name": "m",
                    "opcua": {"endpoint": self.endpoint, "publishing_interval_ms": 100},
                    "points": [{"id": "v", "opcua": {"node_id": "ns=2;s=D.V"}}],
                }
            ]
        )

    def connectors(self) -> list[Connector]:
        return build_opcua(self.site())

    async def start(self) -> None:
        s = new_server()
        await s.init()
        s.set_endpoint(self.endpoint)
        idx = await s.register_namespace("urn:dev")
        folder = await s.nodes.objects.add_folder(ua.NodeId("D", idx), ua.QualifiedName("D", idx))
        node = await folder.add_variable(ua.NodeId("D.V", idx), ua.QualifiedName("V", idx), 0.0)
        await s.start()
        self.server = s

        async def change() -> None:
            i = 0
            while True:
                i += 1
                await node.write_value(float(i))
                await asyncio.sleep(0.1)

        self.task = asyncio.create_task(change())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await stop_server(self.server)
        release_standard_nodes()

    async def close(self) -> None:
        await self.stop()


class ModbusDevice:
    def __init__(self, port: int) -> None:
        self.port = port
        self.server: MeterServer | None = None

    def site(self) -> SiteConfig:
        return _site(
            [
                {
                    "id": "m",
                    "name": "m",
                    "modbus": {"host": "127.0.0.1", "port": self.port, "unit": 1},
                    "points": [
                        {
                            "id": "v",
                            "datatype": "uint16",
                            "interval_ms": 100,
                            "modbus": {"address": 0},
                        }
                    ],
                }
            ]
        )

    def connectors(self) -> list[Connector]:
        return build_modbus(self.site())

    async def start(self) -> None:
        self.server = MeterServer({1: UnitImage(holding={0: 7})}, port=self.port)
        await self.server.start()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    async def close(self) -> None:
        await self.stop()


class MqttDevice:
    """The broker is the device: a private mosquitto (persistent, same port on restart) and a
    publisher that sends a numeric value with QoS 1 every 100 ms while it is connected."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._dir = tempfile.TemporaryDirectory(prefix="bench-mqtt-")
        self.broker = Mosquitto(Path(self._dir.name), port=port)
        self.publisher: mqtt.Client | None = None
        self.task: asyncio.Task[None] | None = None

    def site(self) -> SiteConfig:
        # the mqtt block as a site file gives it: host and port, every other setting (client
        # id, persistent session, QoS 1, reconnect backoff and timeout) left at its default
        return _site(
            [
                {
                    "id": "m",
                    "name": "m",
                    "mqtt": {"host": "127.0.0.1", "port": self.port},
                    "points": [{"id": "v", "mqtt": {"topic": "bench/m/v"}}],
                }
            ]
        )

    def connectors(self) -> list[Connector]:
        return build_mqtt(self.site())

    async def start(self) -> None:
        await asyncio.to_thread(self.broker.start)
        if self.publisher is not None:
            return  # the publisher kept running; it reconnects by itself
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.reconnect_delay_set(0.1, 0.1)  # type: ignore[arg-type]
        await asyncio.to_thread(client.connect, "127.0.0.1", self.port, 30)
        client.loop_start()
        self.publisher = client

        async def publish() -> None:
            i = 0
            while True:
                i += 1
                if client.is_connected():
                    client.publish("bench/m/v", str(i), qos=1)
                await asyncio.sleep(0.1)

        self.task = asyncio.create_task(publish())

    async def stop(self) -> None:
        await asyncio.to_thread(self.broker.stop)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.publisher is not None:
            self.publisher.disconnect()
            await asyncio.to_thread(self.publisher.loop_stop)
        await self.stop()
        self._dir.cleanup()


async def recovery_trial(make: Callable[[int], Any], down_s: float, seed: int) -> float:
    device = make(free_port())
    await device.start()
    connectors: list[Connector] = device.connectors()
    sink = Counting()
    sup = Supervisor(connectors, sink, HealthTracker(["m"]), Backoff(), rng=random.Random(seed))
    task = asyncio.create_task(sup.run())
    try:
        while True:
            if sink.n:
                break
            await asyncio.sleep(0.05)
        await device.stop()
        await asyncio.sleep(down_s)
        await device.start()
        back = time.perf_counter()
        sink.since = back
        while True:  # polled: the sink notes the arrival time itself
            if sink.first_new_at is not None:
                return sink.first_new_at - back
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await device.close()


MAKERS: dict[str, Callable[[int], Any]] = {
    "opcua": OpcUaDevice,
    "modbus": ModbusDevice,
    "mqtt": MqttDevice,
}


async def recovery(
    down_s: float, trials: int, seed: int, protocols: list[str]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name in protocols:
        make = MAKERS[name]
        out[name] = [await recovery_trial(make, down_s, seed + k) for k in range(trials)]
    return out


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def main_async(args: argparse.Namespace) -> None:
    print(f"machine: {_machine()}; load {os.getloadavg()[0]:.1f}")
    if args.only in (None, "backfill"):
        rates = []
        for r in range(args.runs):
            elapsed, n = await backfill_run(args.points, args.values)
            rates.append(n / elapsed)
            print(
                f"backfill run {r + 1}: {n} values in {elapsed:.2f} s = {n / elapsed:,.0f} values/s"
            )
        print(
            f"backfill median: {statistics.median(rates):,.0f} values/s "
            f"({args.points} points x {args.values} values)"
        )
    if args.only in (None, "recovery"):
        got = await recovery(args.down, args.trials, args.seed, args.protocol or list(MAKERS))
        for name, times in got.items():
            print(
                f"recovery {name}: down {args.down:g} s, device back -> data "
                f"median {statistics.median(times):.2f} s, max {max(times):.2f} s "
                f"({', '.join(f'{t:.2f}' for t in times)})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["backfill", "recovery"])
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--values", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--down", type=float, default=10.0)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--protocol", action="append", choices=list(MAKERS), help="recovery: only these (repeat)"
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
