"""OPC UA value changes/s from ONE subscription of 5,000 monitored items into the pipeline.

An asyncua server in a child process (its own core) holds ``--items`` Double variables and
changes every one of them as fast as it can, in rounds; the gateway side runs the real
:class:`connectors.opcua.OpcUaConnector` (one subscription, 5,000 monitored items, publishing
interval ``--publish-ms``) pushing samples into the edge :class:`SampleQueue`, drained as the
writer would. Figures: value changes/s that reached the queue (the gateway's rate), and the
changes/s the server made (when the two are close, the server is the limit, not the gateway).

    .venv/bin/python bench/bench_opcua.py                 # 5,000 items, 10 s, 3 runs
    .venv/bin/python bench/bench_opcua.py --runs 5 --seconds 15
    .venv/bin/python bench/bench_opcua.py --stock-server   # the server as first written
    .venv/bin/python bench/bench_opcua.py --items 50000 --period-ms 1000 --publish-ms 500 \
        --queue-size 1 --sink queue --prebuilt   # a server that is not the limit (PrebuiltRound)

The gateway process holds nothing but the connector and the drain, so its CPU time over the
measured window divided by the changes received is the gateway's cost per change (printed as
us/change and as changes/s one fully used core would carry).
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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from asyncua import ua

from config.loader import load_site_text
from connectors.base import Sample, SampleBlock
from connectors.opcua import OpcUaConnector
from connectors.simulators.cnc import new_server
from edge.queue import SampleQueue

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.net import free_port, wait_port


def lean_server() -> None:
    """Server tuning of the bench's server process (two asyncua per-change costs py-spy shows;
    same notifications, same change detection):

    * the monitored item deep-copies every written DataValue
      (``MonitoredItemValues.set_current_datavalue``: 40 % of the server's CPU). The bench
      writes frozen DataValues of float scalars and never mutates one, so a reference is the
      same;
    * ``MonitoredItemService.datachange_callback`` builds a default
      ``MonitoredItemNotification()`` (a throw-away DataValue and Variant whose type is
      guessed: 44 % of what is left) before setting its two fields; here it is built once with
      them.
    """
    from asyncua.server import monitored_item_service as mis

    def set_current(self: mis.MonitoredItemValues, cur_val: ua.DataValue) -> None:
        self.old_dvalue = self.current_dvalue
        self.current_dvalue = cur_val

    status_value = ua.DataChangeTrigger.StatusValue
    changed = mis.MonitoredItemService._is_data_changed

    async def datachange_callback(
        self: mis.MonitoredItemService, handle: int, value: ua.DataValue, error: Any = None
    ) -> None:
        if error:
            await self.trigger_statuschange(error)
            return
        mid = self._monitored_datachange[handle]
        mdata = self._monitored_items[mid]
        mdata.mvalue.set_current_datavalue(value)
        if mdata.filter:
            passed = changed(mdata.mvalue, mdata.filter.Trigger) and self._is_deadband_exceeded(
                mdata.mvalue, mdata.filter
            )
        else:
            passed = changed(mdata.mvalue, status_value)
        if passed:
            event = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
            await self.isub.enqueue_datachange_event(mid, event, mdata.queue_size)

    fast_notification_encoding()
    mis.MonitoredItemValues.set_current_datavalue = set_current  # type: ignore[method-assign]
    mis.MonitoredItemService.datachange_callback = datachange_callback  # type: ignore[method-assign]


def fast_notification_encoding() -> None:
    """(Server tuning) encode a DataChangeNotification with each distinct DataValue encoded
    once: the bench writes one DataValue per round to every variable, so the notification is
    ``count + (handle + that DataValue's bytes) x n`` -- the same bytes as asyncua's encoding
    item by item (20 us per item on this machine; a C server's cost is far lower). Must run
    before the server encodes anything (asyncua caches its serializers)."""
    import struct

    from asyncua.ua import ua_binary

    stock = ua_binary.extensionobject_to_binary
    u32, i32 = struct.Struct("<I"), struct.Struct("<i")
    type_id = ua_binary.nodeid_to_binary(
        ua.FourByteNodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
    )

    def encode(obj: Any) -> bytes:
        if type(obj) is PrebuiltDataChange:
            return obj.wire
        if type(obj) is not ua.DataChangeNotification:
            return bytes(stock(obj))
        cache: dict[int, bytes] = {}
        parts = [i32.pack(len(obj.MonitoredItems))]
        for item in obj.MonitoredItems:
            dv = item.Value
            raw = cache.get(id(dv))
            if raw is None:
                raw = cache[id(dv)] = bytes(ua_binary.struct_to_binary(dv))
            parts.append(u32.pack(item.ClientHandle))
            parts.append(raw)
        tail = ua_binary.struct_to_binary(
            ua.DataChangeNotification(MonitoredItems=[], DiagnosticInfos=obj.DiagnosticInfos)
        )
        parts.append(bytes(tail)[4:])
        body = b"".join(parts)
        return bytes(type_id) + b"\x01" + i32.pack(len(body)) + body

    ua_binary.extensionobject_to_binary = encode


class PrebuiltDataChange(ua.DataChangeNotification):  # type: ignore[misc]
    """A DataChangeNotification whose ExtensionObject bytes (``wire``) are already encoded."""

    wire: bytes = b""


# one MonitoredItemNotification of a Double with source and server timestamps, as encoded on
# the wire as asyncua encodes it: client handle, DataValue mask (value | status | source ts |
# server ts), Variant type (Double), value, status code (Good), the two timestamps (100 ns
# since 1601)
ITEM = np.dtype(
    [
        ("h", "<u4"),
        ("mask", "u1"),
        ("vt", "u1"),
        ("v", "<f8"),
        ("status", "<u4"),
        ("src", "<i8"),
        ("srv", "<i8"),
    ]
)


class PrebuiltRound:
    """(Server tuning, ``--prebuilt``) a subscription's DataChangeNotification for every
    monitored item, written in place with numpy each round: one value per item
    (``round + item/1000``) and the round's timestamps -- what a C server's sampling engine
    hands its publisher, at a few milliseconds per 50,000 items, so that the Python server is
    not the limit. The bytes are checked against asyncua's own encoding once."""

    def __init__(self, handles: list[int]) -> None:
        import struct

        from asyncua.ua import ua_binary

        self.items = np.zeros(len(handles), dtype=ITEM)
        self.items["h"] = handles
        self.items["mask"] = 0x0F
        self.items["vt"] = int(ua.VariantType.Double.value)
        self.frac = np.arange(len(handles), dtype=np.float64) / 1000
        i32 = struct.Struct("<i")
        self.type_id = bytes(
            ua_binary.nodeid_to_binary(
                ua.FourByteNodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
            )
        )
        self.tail = bytes(ua_binary.struct_to_binary(ua.DataChangeNotification()))[4:]
        self.head = i32.pack(len(handles))
        self.i32 = i32
        # the encoding of one item, against asyncua's
        now = dt_now()
        self.fill(1, now)
        dv = ua.DataValue(
            ua.Variant(float(self.items["v"][0]), ua.VariantType.Double),
            SourceTimestamp=now,
            ServerTimestamp=now,
        )
        mine = self.items[:1].tobytes()
        theirs = struct.pack("<I", handles[0]) + bytes(ua_binary.struct_to_binary(dv))
        if mine != theirs:
            raise RuntimeError(f"prebuilt item encoding differs: {mine!r} != {theirs!r}")

    def fill(self, k: int, now: dt.datetime) -> None:
        from asyncua.ua.uatypes import datetime_to_win_epoch

        ticks = datetime_to_win_epoch(now)
        self.items["v"] = self.frac + float(k)
        self.items["src"] = ticks
        self.items["srv"] = ticks

    def notification(self) -> PrebuiltDataChange:
        body = self.head + self.items.tobytes() + self.tail
        notif = PrebuiltDataChange()
        notif.wire = self.type_id + b"\x01" + self.i32.pack(len(body)) + body
        return notif


def use_prebuilt() -> None:
    """(Server tuning) a subscription with a ``_prebuilt`` notification publishes it as is."""
    from asyncua.server.internal_subscription import InternalSubscription

    stock_pop = InternalSubscription._pop_triggered_datachanges

    def pop(self: InternalSubscription, result: ua.PublishResult) -> None:
        notif = getattr(self, "_prebuilt", None)
        if notif is None:
            stock_pop(self, result)
            return
        self._prebuilt = None
        self._triggered_datachanges = {}
        result.NotificationMessage.NotificationData.append(notif)

    InternalSubscription._pop_triggered_datachanges = pop


def pending(subs: dict[int, Any]) -> bool:
    """Whether a server subscription still holds changes it has not published."""
    return any(sub._triggered_datachanges for sub in subs.values())


async def add_variables(server: Any, idx: int, items: int) -> list[ua.NodeId]:
    """``items`` Double variables in folders of 100, created with one AddNodes call."""
    todo: list[ua.AddNodesItem] = []
    nodes: list[ua.NodeId] = []
    folder = ua.NodeId()
    for i in range(items):
        if i % 100 == 0:  # asyncua adds a child in O(siblings): keep folders small
            folder = ua.NodeId(f"B{i // 100}", idx)
            fa = ua.ObjectAttributes()
            fa.DisplayName = ua.LocalizedText(f"B{i // 100}")
            todo.append(
                ua.AddNodesItem(
                    ParentNodeId=ua.NodeId(ua.ObjectIds.ObjectsFolder),
                    ReferenceTypeId=ua.NodeId(ua.ObjectIds.Organizes),
                    RequestedNewNodeId=folder,
                    BrowseName=ua.QualifiedName(f"B{i // 100}", idx),
                    NodeClass_=ua.NodeClass.Object,
                    NodeAttributes=fa,
                    TypeDefinition=ua.NodeId(ua.ObjectIds.FolderType),
                )
            )
        va = ua.VariableAttributes()
        va.DisplayName = ua.LocalizedText(f"v{i}")
        va.Value = ua.Variant(0.0, ua.VariantType.Double)
        va.DataType = ua.NodeId(ua.ObjectIds.Double)
        va.ValueRank = -1
        va.AccessLevel = va.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
        nid = ua.NodeId(f"B.v{i}", idx)
        todo.append(
            ua.AddNodesItem(
                ParentNodeId=folder,
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasComponent),
                RequestedNewNodeId=nid,
                BrowseName=ua.QualifiedName(f"v{i}", idx),
                NodeClass_=ua.NodeClass.Variable,
                NodeAttributes=va,
                TypeDefinition=ua.NodeId(ua.ObjectIds.BaseDataVariableType),
            )
        )
        nodes.append(nid)
    results = await server.iserver.isession.add_nodes(todo)
    bad = [r.StatusCode for r in results if not r.StatusCode.is_good()]
    if bad:
        raise RuntimeError(f"{len(bad)} nodes not created: {bad[0]}")
    return nodes


def serve(
    port: int,
    items: int,
    stock: bool,
    ready: mp.synchronize.Event,
    stop: mp.synchronize.Event,
    made: mp.sharedctypes.Synchronized,
    period_s: float = 0.0,
    direct: bool = False,
    overruns: mp.sharedctypes.Synchronized | None = None,  # type: ignore[name-defined]
    prebuilt: bool = False,
) -> None:  # type: ignore[name-defined]
    """Child process: the server, changing every variable in rounds until ``stop``.

    ``stock``: the first version's way (``Server.write_attribute_value`` with a new DataValue
    per change and no source timestamp, a 1 ms sleep every 100 writes, asyncua as installed).
    Tuned (default): :func:`lean_server`; one DataValue per round (value and source timestamp
    built once, as a controller stamps a scan) written straight to the address space; a bare
    yield every 100 writes; the next round once the server published the last one.
    ``direct``: the round's notifications put straight into the subscriptions' queues;
    ``prebuilt`` (with ``direct``): as one :class:`PrebuiltRound` per subscription.
    """

    async def main() -> None:
        if not stock:
            lean_server()
        if prebuilt:
            use_prebuilt()
        rounds: dict[int, PrebuiltRound] = {}
        server = new_server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:bench")
        nodes = await add_variables(server, idx, items)
        await server.start()
        ready.set()
        value_attr = ua.AttributeIds.Value
        subs = server.iserver.subscription_service.subscriptions
        write = server.iserver.aspace.write_attribute_value
        k = 0
        next_round = time.monotonic()
        try:
            while not stop.is_set():
                if period_s > 0:
                    # a plant's rate: every variable once per period (not as fast as possible)
                    # (a late round is not made up for with a burst of rounds)
                    next_round = max(next_round + period_s, time.monotonic())
                    await asyncio.sleep(max(0.0, next_round - time.monotonic()))
                k += 1
                if stock:
                    for j, nid in enumerate(nodes):
                        await server.write_attribute_value(
                            nid, ua.DataValue(ua.Variant(float(k), ua.VariantType.Double))
                        )
                        if j % 100 == 99:
                            with made.get_lock():
                                made.value += 100
                            await asyncio.sleep(0.001)
                    continue
                now = dt_now()
                dv = ua.DataValue(
                    ua.Variant(float(k), ua.VariantType.Double),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                if direct and prebuilt:
                    for sid, sub in subs.items():
                        monitored = sub.monitored_item_srv._monitored_items
                        pre = rounds.get(sid)
                        if pre is None or len(pre.items) != len(monitored):
                            handles = [m.client_handle for m in monitored.values()]
                            if not handles:
                                continue
                            pre = rounds[sid] = PrebuiltRound(handles)
                        if getattr(sub, "_prebuilt", None) is not None and overruns is not None:
                            with overruns.get_lock():
                                overruns.value += 1
                        pre.fill(k, now)
                        sub._prebuilt = pre.notification()
                        sub._triggered_datachanges = {0: []}
                        with made.get_lock():
                            made.value += len(pre.items)
                    if period_s <= 0:
                        while pending(subs) and not stop.is_set():  # noqa: ASYNC110 (polled)
                            await asyncio.sleep(0.002)
                    continue
                if direct:
                    # the round's notifications straight into each subscription's queue (what
                    # a C server's sampling engine does); a round not yet published is an
                    # overrun: its changes are replaced, as a queue of size 1 would
                    for sub in subs.values():
                        if sub._triggered_datachanges and overruns is not None:
                            with overruns.get_lock():
                                overruns.value += 1
                        monitored = sub.monitored_item_srv._monitored_items
                        sub._triggered_datachanges = {
                            mid: [
                                ua.MonitoredItemNotification(ClientHandle=m.client_handle, Value=dv)
                            ]
                            for mid, m in monitored.items()
                        }
                        with made.get_lock():
                            made.value += len(monitored)
                    if period_s <= 0:
                        while pending(subs) and not stop.is_set():  # noqa: ASYNC110 (polled)
                            await asyncio.sleep(0.002)
                    continue
                for j, nid in enumerate(nodes):
                    await write(nid, value_attr, dv)
                    if j % 100 == 99:
                        with made.get_lock():
                            made.value += 100
                        # let the server publish and answer while we write
                        await asyncio.sleep(0)
                # back-pressure: the next round once this one is published (a writer that
                # outruns the server's own publishing only has its changes overwritten in the
                # monitored item queues, and takes the CPU the publishing needs)
                while pending(subs) and not stop.is_set():  # noqa: ASYNC110 (polled)
                    await asyncio.sleep(0.002)
        finally:
            await server.stop()

    asyncio.run(main())


def site_text(port: int, items: int, publish_ms: int, queue_size: int = 1) -> str:
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
        f"sampling_ms: 0, queue_size: {queue_size}}}}}"
        for i in range(items)
    ]
    return "\n".join(lines) + "\n"


class CountingSink:
    """The connector's sink without a pipeline behind it: counts samples (blocks taken as
    they are) and keeps the newest timestamp seen (for the lag)."""

    def __init__(self) -> None:
        self.received = 0
        self.newest = 0

    def put(self, sample: Sample) -> None:
        self.received += 1
        self.newest = max(self.newest, sample.ts)

    def put_many(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            self.put(s)

    def put_block(self, block: SampleBlock) -> None:
        self.received += len(block)
        if len(block):
            self.newest = max(self.newest, int(block.ts.max()))

    def link(self, device: str, connected: bool) -> None:
        pass

    def error(self, device: str, kind: str) -> None:
        pass


async def measure(
    port: int,
    items: int,
    seconds: float,
    publish_ms: int,
    queue_size: int,
    made: mp.sharedctypes.Synchronized,  # type: ignore[name-defined]
    sink_kind: str = "queue",
) -> tuple[float, float, float, float]:
    """(changes/s into the sink, changes/s the server made, gateway CPU seconds per change,
    lag in seconds: the gateway's clock minus the newest source timestamp received, at the
    end of the window)."""
    site = load_site_text(site_text(port, items, publish_ms, queue_size))
    dev = site.devices[0]
    assert dev.opcua is not None
    connector = OpcUaConnector(dev.opcua, site.devices)
    queue = SampleQueue(1_000_000)
    counting = CountingSink()
    received = 0
    newest = 0

    async def drain() -> None:
        nonlocal received, newest
        while True:
            got = await queue.get_batch(50_000, 0.05)
            received += len(got)
            if got:
                newest = max(newest, got[-1].ts)

    def count() -> int:
        return counting.received if sink_kind == "count" else received

    def lag() -> float:
        last = counting.newest if sink_kind == "count" else newest
        return (time.time_ns() - last) / 1e9

    run = asyncio.create_task(connector.run(counting if sink_kind == "count" else queue))
    drainer = asyncio.create_task(drain())
    try:
        # warm-up: every item's initial value arrived
        t_end = time.monotonic() + 120
        while count() < items and time.monotonic() < t_end:  # noqa: ASYNC110 (polled)
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        # this process is the gateway alone (the server has its own): its CPU time over the
        # window is the gateway's cost of the changes it received
        r0, m0, t0, c0 = count(), made.value, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        r1, m1, t1, c1 = count(), made.value, time.perf_counter(), time.process_time()
        late = lag()
        if run.done():
            print(f"  (the connector stopped during the run: {run.exception()!r})")
    finally:
        for t in (run, drainer):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    got = r1 - r0
    return got / (t1 - t0), (m1 - m0) / (t1 - t0), (c1 - c0) / max(got, 1), late


def client_side(items: int, rounds: int, stock: bool = False) -> tuple[float, float, float, float]:
    """The gateway's half alone: real PublishResponse bytes of one subscription (``items``
    changes each) decoded by asyncua and turned into samples in the queue by the connector's
    subscription callback (with the connector's own per-sample bookkeeping), no server in the
    way. Returns (changes/s wall clock, CPU us per change in all, CPU us per change of the
    conversion to samples, CPU us per change of the same conversion through the general
    per-item path ``sample_of``: the handler as first written)."""
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

    from connectors.opcua.convert import sample_of
    from connectors.opcua.fastpublish import decode_publish
    from connectors.opcua.subscription import SampleSubscription, subscription_params

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
    site = load_site_text(site_text(4840, items, 100))  # never connected
    dev = site.devices[0]
    assert dev.opcua is not None
    connector = OpcUaConnector(dev.opcua, site.devices)
    keep = connector._on_sample
    sub = SampleSubscription(None, subscription_params(100, 60), queue, keep)
    for i, ref in enumerate(connector.refs):
        ref.handle = i + 1
        sub.refs[i + 1] = ref

    async def go() -> tuple[float, float, float, float]:
        convert = general = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            decoded = (
                struct_from_binary(ua.PublishResponse, Buffer(wire))
                if stock
                else decode_publish(Buffer(wire))
            )
            k0 = time.process_time()
            await sub.publish_callback(decoded.Parameters)
            convert += time.process_time() - k0
            queue.get_nowait(items)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        decoded = struct_from_binary(ua.PublishResponse, Buffer(wire))
        (data,) = decoded.Parameters.NotificationMessage.NotificationData
        for _ in range(rounds):
            k0 = time.process_time()
            out = []
            for item in data.MonitoredItems:
                ref = sub.refs[item.ClientHandle]
                s = sample_of(ref.device, ref.point.id, item.Value, 0, ref.scale, ref.offset)
                if keep(ref, s):
                    out.append(s)
            queue.put_many(out)
            general += time.process_time() - k0
            queue.get_nowait(items)
        n = items * rounds
        return n / wall, cpu / n * 1e6, convert / n * 1e6, general / n * 1e6

    return asyncio.run(go())


def dt_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def one_run(
    items: int,
    seconds: float,
    publish_ms: int,
    queue_size: int,
    stock: bool,
    period_s: float = 0.0,
    sink_kind: str = "queue",
    direct: bool = False,
    prebuilt: bool = False,
) -> tuple[float, float, float, float, int]:
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    made = ctx.Value("q", 0)
    overruns = ctx.Value("q", 0)
    proc = ctx.Process(
        target=serve,
        args=(port, items, stock, ready, stop, made, period_s, direct, overruns, prebuilt),
        daemon=True,
    )
    proc.start()
    try:
        if not ready.wait(600):
            raise RuntimeError("server did not start")
        wait_port(port)
        got = asyncio.run(measure(port, items, seconds, publish_ms, queue_size, made, sink_kind))
        return (*got, overruns.value)
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
    ap.add_argument(
        "--queue-size",
        type=int,
        default=4,
        help="monitored item queue size: changes an item may make between two publishes",
    )
    ap.add_argument(
        "--stock-server",
        action="store_true",
        help="the server as first written (per-change DataValue, asyncua's value copy)",
    )
    ap.add_argument("--no-client-half", action="store_true", help="skip the decode-only figure")
    ap.add_argument(
        "--period-ms",
        type=int,
        default=0,
        help="the server changes every variable once per period (0: as fast as it can)",
    )
    ap.add_argument(
        "--sink",
        choices=["queue", "count"],
        default="queue",
        help="queue: the edge SampleQueue drained as the writer would; count: a counting sink "
        "that takes blocks (the connector's own cost)",
    )
    ap.add_argument(
        "--direct",
        action="store_true",
        help="the server puts each round's notifications straight into its subscriptions' "
        "queues (no address-space write per change): asyncua's server alone cannot make "
        "50,000 changes/s on this machine",
    )
    ap.add_argument(
        "--prebuilt",
        action="store_true",
        help="(with --direct) every round's notification bytes written in place with numpy "
        "(PrebuiltRound): the server makes millions of changes/s, the gateway is the limit",
    )
    ap.add_argument(
        "--stock-decoder",
        action="store_true",
        help="asyncua's own publish decoding (no columnar path), for comparison",
    )
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"one subscription, {args.items} monitored items, publishing {args.publish_ms} ms, "
        f"queue size {args.queue_size}, "
        f"server {'stock' if args.stock_server else 'tuned'}, "
        f"period {args.period_ms or 'none'} ms, sink {args.sink}, "
        f"decoder {'asyncua' if args.stock_decoder else 'columnar'}"
    )
    if not args.no_client_half:
        halves = [
            client_side(args.items, max(2, 200_000 // args.items), args.stock_decoder)
            for _ in range(args.runs)
        ]
        print(
            "gateway half alone (decode PublishResponse + samples into the queue): "
            + ", ".join(f"{h[0]:,.0f}" for h in halves)
            + f" -> median {statistics.median(h[0] for h in halves):,.0f} value changes/s "
            f"(wall clock); CPU {statistics.median(h[1] for h in halves):.1f} us/change = "
            f"{1e6 / statistics.median(h[1] for h in halves):,.0f} changes/s per core, of which "
            f"conversion to samples {statistics.median(h[2] for h in halves):.2f} us/change "
            f"(general per-item path: {statistics.median(h[3] for h in halves):.2f} us/change)"
        )
    if args.stock_decoder:
        from connectors.opcua import connector as opcua_connector

        opcua_connector.install_fast_publish = lambda _uaclient: False  # type: ignore[assignment]
    rates, server, cpu = [], [], []
    lags: list[float] = []
    for i in range(args.runs):
        got, made, cpu_per, lag, overran = one_run(
            args.items,
            args.seconds,
            args.publish_ms,
            args.queue_size,
            args.stock_server,
            args.period_ms / 1000.0,
            args.sink,
            args.direct or args.prebuilt,
            args.prebuilt,
        )
        lags.append(lag)
        rates.append(got)
        server.append(made)
        cpu.append(cpu_per)
        print(
            f"run {i + 1}: {got:,.0f} value changes/s into the queue "
            f"(server changed {made:,.0f}/s); "
            f"gateway CPU {cpu_per * 1e6:.1f} us/change ({got * cpu_per * 100:.0f} % of a core) "
            f"= {1 / cpu_per:,.0f} changes/s per core; lag at the end {lag:.2f} s; "
            f"server rounds overrun {overran}"
        )
    med_cpu = statistics.median(cpu)
    print(
        f"end to end median: {statistics.median(rates):,.0f} value changes/s into the pipeline "
        f"(server {statistics.median(server):,.0f}/s); target >= 10,000/s; gateway CPU median "
        f"{med_cpu * 1e6:.1f} us/change = {1 / med_cpu:,.0f} changes/s per core; "
        f"{statistics.median(rates) * med_cpu * 100:.0f} % of a core; "
        f"lag median {statistics.median(lags):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
