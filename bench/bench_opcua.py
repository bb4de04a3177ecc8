"""OPC UA value changes/s from ONE subscription of 5,000 monitored items into the pipeline.

An asyncua server in a child process (its own core) holds ``--items`` Double variables and
changes every one of them as fast as it can, in rounds; the gateway side runs the real
:class:`connectors.opcua.OpcUaConnector` (one subscription, 5,000 monitored items, publishing
interval ``--publish-ms``) pushing samples into the edge :class:`SampleQueue`, drained as the
writer would. Figures: value changes/s that reached the queue (the gateway's rate), and the
changes/s the server made (when the two are close, the server is the limit, not the gateway).

    .venv/bin/python bench/bench_opcua.py                 # 5,000 items, 10 s, 3 runs
    .venv/bin/python bench/bench_opcua.py --runs 5 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asyncua import ua

from config.loader import load_site_text
from connectors.opcua import OpcUaConnector
from connectors.simulators.cnc import new_server
from edge.queue import SampleQueue

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.net import free_port, wait_port


def serve(
    port: int,
    items: int,
    ready: mp.synchronize.Event,
    stop: mp.synchronize.Event,
    made: mp.sharedctypes.Synchronized,
) -> None:  # type: ignore[name-defined]
    """Child process: the server, changing every variable in rounds until ``stop``."""

    async def main() -> None:
        server = new_server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:bench")
        nodes = []
        folder = None
        for i in range(items):
            if i % 100 == 0:  # asyncua adds a child in O(siblings): keep folders small
                folder = await server.nodes.objects.add_folder(
                    ua.NodeId(f"B{i // 100}", idx), f"{idx}:B{i // 100}"
                )
            assert folder is not None
            n = await folder.add_variable(ua.NodeId(f"B.v{i}", idx), f"{idx}:v{i}", 0.0)
            nodes.append(n.nodeid)
        await server.start()
        ready.set()
        k = 0
        try:
            while not stop.is_set():
                k += 1
                for j, nid in enumerate(nodes):
                    await server.write_attribute_value(
                        nid, ua.DataValue(ua.Variant(float(k), ua.VariantType.Double))
                    )
                    if j % 100 == 99:
                        with made.get_lock():
                            made.value += 100
                        # let the server publish and answer while we write
                        await asyncio.sleep(0.001)
        finally:
            await server.stop()

    asyncio.run(main())


def site_text(port: int, items: int, publish_ms: int) -> str:
    lines = [
        "version: 1",
        "site: {id: bench, name: bench}",
        "devices:",
        "  - id: m",
        "    name: m",
        f"    opcua: {{endpoint: 'opc.tcp://127.0.0.1:{port}/bench', "
        f"publishing_interval_ms: {publish_ms}, watchdog_s: 60, timeout_s: 20}}",
        "    points:",
    ]
    lines += [
        f"      - {{id: v{i}, datatype: float64, opcua: {{node_id: 'ns=2;s=B.v{i}', "
        f"sampling_ms: 0}}}}"
        for i in range(items)
    ]
    return "\n".join(lines) + "\n"


async def measure(
    port: int, items: int, seconds: float, publish_ms: int, made: mp.sharedctypes.Synchronized
) -> tuple[float, float, int]:  # type: ignore[name-defined]
    site = load_site_text(site_text(port, items, publish_ms))
    dev = site.devices[0]
    assert dev.opcua is not None
    connector = OpcUaConnector(dev.opcua, site.devices)
    queue = SampleQueue(1_000_000)
    received = 0

    async def drain() -> None:
        nonlocal received
        while True:
            got = await queue.get_batch(50_000, 0.05)
            received += len(got)

    run = asyncio.create_task(connector.run(queue))
    drainer = asyncio.create_task(drain())
    try:
        # warm-up: every item's initial value arrived
        t_end = time.monotonic() + 60
        while received < items and time.monotonic() < t_end:  # noqa: ASYNC110 (polled)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        r0, m0, t0 = received, made.value, time.perf_counter()
        await asyncio.sleep(seconds)
        r1, m1, t1 = received, made.value, time.perf_counter()
        if run.done():
            print(f"  (the connector stopped during the run: {run.exception()!r})")
    finally:
        for t in (run, drainer):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    subs = len(connector.subscriptions) if connector.subscriptions else 1
    return (r1 - r0) / (t1 - t0), (m1 - m0) / (t1 - t0), subs


def client_side(items: int, rounds: int) -> float:
    """Value changes/s through the gateway's half alone: real PublishResponse bytes of one
    subscription (``items`` changes each) decoded by asyncua and turned into samples in the
    queue by the connector's subscription callback (no server in the way)."""
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

    from config.models import Point
    from connectors.opcua.subscription import PointRef, SampleSubscription, subscription_params

    now = dt_now()
    notif = ua.DataChangeNotification()
    notif.MonitoredItems = [
        ua.MonitoredItemNotification(
            ClientHandle=i + 1,
            Value=ua.DataValue(
                ua.Variant(float(i), ua.VariantType.Double),
                SourceTimestamp=now,
                ServerTimestamp=now,
            ),
        )
        for i in range(items)
    ]
    resp = ua.PublishResponse()
    resp.Parameters.SubscriptionId = 1
    resp.Parameters.NotificationMessage.NotificationData = [notif]
    wire = struct_to_binary(resp)
    queue = SampleQueue(10_000_000)
    sub = SampleSubscription(None, subscription_params(100, 60), queue, lambda r, s: True)
    point = Point(id="v", datatype="float64", opcua={"node_id": "ns=2;i=1"})
    for i in range(items):
        ref = PointRef("m", point, ua.NodeId(i, 2))
        ref.handle = i + 1
        sub.refs[i + 1] = ref

    async def go() -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            decoded = struct_from_binary(ua.PublishResponse, Buffer(wire))
            await sub.publish_callback(decoded.Parameters)
            queue.get_nowait(items)
        return items * rounds / (time.perf_counter() - t0)

    return asyncio.run(go())


def dt_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def one_run(items: int, seconds: float, publish_ms: int) -> tuple[float, float]:
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    made = ctx.Value("q", 0)
    proc = ctx.Process(target=serve, args=(port, items, ready, stop, made), daemon=True)
    proc.start()
    try:
        if not ready.wait(600):
            raise RuntimeError("server did not start")
        wait_port(port)
        got, server_rate, _ = asyncio.run(measure(port, items, seconds, publish_ms, made))
        return got, server_rate
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--publish-ms", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"one subscription, {args.items} monitored items, publishing {args.publish_ms} ms")
    client = [client_side(args.items, 40) for _ in range(args.runs)]
    print(
        "gateway half alone (decode PublishResponse + samples into the queue): "
        + ", ".join(f"{c:,.0f}" for c in client)
        + f" -> median {statistics.median(client):,.0f} value changes/s"
    )
    rates, server = [], []
    for i in range(args.runs):
        got, made = one_run(args.items, args.seconds, args.publish_ms)
        rates.append(got)
        server.append(made)
        print(
            f"run {i + 1}: {got:,.0f} value changes/s into the queue (server changed {made:,.0f}/s)"
        )
    print(
        f"end to end median: {statistics.median(rates):,.0f} value changes/s into the pipeline "
        f"(server {statistics.median(server):,.0f}/s); target >= 10,000/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
