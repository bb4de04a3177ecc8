"""Helpers of the OPC UA tests: a recording sink, site files, plain asyncua servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, ClassVar

import yaml
from asyncua import Server, ua

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import Connector, Sample, SampleBlock
from connectors.simulators.cnc import (
    SimSecurity,
    apply_security,
    new_server,
    release_standard_nodes,
    stop_server,
)


class RecordingSink:
    """Our Sink contract, recording everything, with waits on conditions."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors: list[tuple[str, str]] = []
        self.links: list[tuple[str, bool]] = []
        self._changed = asyncio.Event()

    def put(self, sample: Sample) -> None:
        self.samples.append(sample)
        self._changed.set()

    def put_many(self, samples: Iterable[Sample]) -> None:
        self.samples.extend(samples)
        self._changed.set()

    def put_block(self, block: SampleBlock) -> None:
        self.put_many(block.samples())

    def link(self, device: str, connected: bool) -> None:
        self.links.append((device, connected))
        self._changed.set()

    def error(self, device: str, kind: str) -> None:
        self.errors.append((device, kind))
        self._changed.set()

    def of(self, device: str, point: str) -> list[Sample]:
        return [s for s in self.samples if s.device == device and s.point == point]

    async def wait(self, cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + within
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what or cond}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.1))


def site_of(devices: list[dict[str, Any]]) -> SiteConfig:
    text = yaml.safe_dump({"version": 1, "site": {"id": "t", "name": "test"}, "devices": devices})
    return load_site_text(text)


def device(dev_id: str, endpoint: str, points: list[dict[str, Any]], **conn: Any) -> dict[str, Any]:
    return {"id": dev_id, "name": dev_id, "opcua": {"endpoint": endpoint, **conn}, "points": points}


@contextlib.asynccontextmanager
async def running(connector: Connector, sink: RecordingSink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(connector.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def dv(
    value: Any, vt: ua.VariantType, source: dt.datetime | None = None, status: int = 0
) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(value, vt),
        StatusCode_=ua.StatusCode(status),
        SourceTimestamp=source or dt.datetime.now(dt.UTC),
        ServerTimestamp=dt.datetime.now(dt.UTC),
    )


class PlainServer:
    """An asyncua server with a folder ``2:Plant`` of test variables (ns=2;s=Plant.<Name>)."""

    VARS: ClassVar[dict[str, tuple[Any, ua.VariantType]]] = {
        "Temp": (20.0, ua.VariantType.Double),
        "Flag": (False, ua.VariantType.Boolean),
        "Count": (0, ua.VariantType.UInt32),
        "Level": (50.0, ua.VariantType.Double),  # has an EURange 0..200
        "Pressure": (1.0, ua.VariantType.Double),
        "Status": (0, ua.VariantType.Int32),
    }

    def __init__(self, port: int, security: SimSecurity | None = None) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/test"
        self.security = security or SimSecurity()
        self.server: Server = new_server(self.security)
        self.nodes: dict[str, ua.NodeId] = {}
        self.extra: list[ua.NodeId] = []

    async def start(self, n_extra: int = 0) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        await apply_security(s, self.security)
        idx = await s.register_namespace("urn:test")
        folder = await s.nodes.objects.add_folder(
            ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx)
        )
        for name, (value, vt) in self.VARS.items():
            node = await folder.add_variable(
                ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx), ua.Variant(value, vt)
            )
            self.nodes[name] = node.nodeid
        level = s.get_node(self.nodes["Level"])
        await level.add_property(
            ua.NodeId("Plant.Level.EURange", idx),
            ua.QualifiedName("EURange", 0),
            ua.Range(Low=0.0, High=200.0),
            varianttype=ua.VariantType.ExtensionObject,
        )
        for i in range(n_extra):
            node = await folder.add_variable(
                ua.NodeId(f"Plant.X{i}", idx),
                ua.QualifiedName(f"X{i}", idx),
                ua.Variant(0.0, ua.VariantType.Double),
            )
            self.extra.append(node.nodeid)
        await s.start()

    async def write(self, name: str, value: Any, **kw: Any) -> None:
        vt = self.VARS[name][1]
        await self.server.write_attribute_value(self.nodes[name], dv(value, vt, **kw))

    async def set_limits(self, per_read: int, per_call: int) -> None:
        for oid, value in (
            (ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, per_read),
            (
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                per_call,
            ),
        ):
            await self.server.get_node(ua.NodeId(oid)).write_value(
                ua.Variant(value, ua.VariantType.UInt32)
            )

    async def stop(self) -> None:
        try:
            await stop_server(self.server)
        finally:
            release_standard_nodes()


class HistoryServer:
    """An asyncua server with ``Plant.Count`` (UInt32) and ``Plant.State`` (Int32) whose
    history holds exactly what the test writes (each value saved at its source timestamp, no
    sampling of its own). ``page`` values per HistoryRead answer (then a continuation point);
    ``max_nodes_per_history_read`` is published in the OperationLimits. ``historizing=False``:
    the same nodes without history (Historizing false, nothing saved): a device whose outages
    cannot be read back."""

    NAMES: ClassVar[dict[str, ua.VariantType]] = {
        "Count": ua.VariantType.UInt32,
        "State": ua.VariantType.Int32,
    }

    def __init__(
        self,
        port: int,
        *,
        page: int = 3,
        max_nodes_per_history_read: int = 1,
        historizing: bool = True,
    ) -> None:
        from asyncua.server.history import HistoryDict

        self.historizing = historizing
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/history"
        self.server: Server = new_server()
        self.history = HistoryDict(max_history_data_response_size=page)
        self.max_nodes = max_nodes_per_history_read
        self.nodes: dict[str, ua.NodeId] = {}
        self.reads = 0  # HistoryRead requests served

    async def start(self, initial: dict[str, tuple[int, dt.datetime]]) -> None:
        """Start (again: a new server on the same port, the history kept), then write
        ``initial`` (name: value, source timestamp)."""
        if self.nodes:
            self.server = new_server()
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        s.iserver.history_manager.set_storage(self.history)
        real = s.iserver.history_manager.read_history

        async def counted(params: Any) -> Any:
            self.reads += 1
            return await real(params)

        s.iserver.history_manager.read_history = counted
        idx = await s.register_namespace("urn:test")
        folder = await s.nodes.objects.add_folder(
            ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx)
        )
        for name, vt in self.NAMES.items():
            node = await folder.add_variable(
                ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx), ua.Variant(0, vt)
            )
            self.nodes[name] = node.nodeid
            if not self.historizing:
                continue
            await s.write_attribute_value(
                node.nodeid,
                ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)),
                ua.AttributeIds.Historizing,
            )
            if node.nodeid not in self.history._datachanges:
                await self.history.new_historized_node(node.nodeid, None, 0)
        for name, (value, source) in initial.items():
            await self.write(name, value, source)
        await s.start()
        # after start (which sets the server's own limits)
        limit = ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData
        await s.get_node(ua.NodeId(limit)).write_value(
            ua.Variant(self.max_nodes, ua.VariantType.UInt32)
        )

    async def while_down(self, name: str, value: int, source: dt.datetime) -> None:
        """A value the device recorded while its server was down (into the history only)."""
        if not self.historizing:
            return
        await self.history.save_node_value(self.nodes[name], dv(value, self.NAMES[name], source))

    async def write(self, name: str, value: int, source: dt.datetime) -> None:
        """The node's new value at ``source``, and the same in its history."""
        d = dv(value, self.NAMES[name], source=source)
        await self.server.write_attribute_value(self.nodes[name], d)
        if self.historizing:
            await self.history.save_node_value(self.nodes[name], d)

    async def stop(self) -> None:
        try:
            await stop_server(self.server)
        finally:
            release_standard_nodes()
