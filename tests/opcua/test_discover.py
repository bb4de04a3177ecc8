"""``shopfloor discover opcua URL``: machines found by their companion-specification types in
an asyncua server that loads the official NodeSet2 XML (npm node-opcua-nodesets, installed on
first use into .cache/), and the fragment, once collected, gives the OEE of a hand-written
mapping."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from asyncua import Node, Server, ua
from asyncua.common.instantiate_util import instantiate

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.opcua import OpcUaConnector
from connectors.opcua.companion import load_table
from connectors.opcua.discover import discover_on, format_fragment
from edge.cli.main import main as cli_main
from metrics.engine import compute_period
from metrics.periods import parse_range
from tests.metrics.memreader import MemReader
from tests.opcua.helpers import RecordingSink, device, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODESETS_VERSION = "2.185.0"  # keep in step with .ci/run and docs/connectors/opcua.md
CACHE = Path(__file__).resolve().parents[2] / ".cache" / f"node-opcua-nodesets-{NODESETS_VERSION}"
FILES = [
    "Opc.Ua.Di.NodeSet2.xml",
    "Opc.Ua.IA.NodeSet2.xml",
    "Opc.Ua.Machinery.NodeSet2.xml",
    "opc.ua.isa95-jobcontrol.nodeset2.xml",  # MachineTool requires Machinery/Jobs, which
    "Opc.Ua.Machinery.Jobs.Nodeset2.xml",  # requires ISA95-JOBCONTROL
    "Opc.Ua.MachineTool.NodeSet2.xml",
    "Opc.Ua.PackML.NodeSet2.xml",
    # OPC 40502 CNC (2017): its types import with strict_mode=False; the example instances it
    # ships (axes without a parent node) do not, and its example CncInterface "test" under
    # Objects is removed after the import (a plant, not the specification's example)
    "Opc.Ua.CNC.NodeSet.xml",
]
CNC = "http://opcfoundation.org/UA/CNC"
MACHINE_TOOL = "http://opcfoundation.org/UA/MachineTool/"
MACHINERY = "http://opcfoundation.org/UA/Machinery/"
PACKML = "http://opcfoundation.org/UA/PackML/"
DI = "http://opcfoundation.org/UA/DI/"
DAY = parse_range("2026-01-05..2026-01-05", "UTC")
H = 3_600_000_000_000
US = 1_000  # OPC UA timestamps count 100 ns: a later instant is at least this much later


MATERIALS = {1: "Cola 0.5 l", 7: "Cola 1 l", 99: "Lemonade"}
Counts = tuple[dict[int, int], dict[int, int]]  # ({ID: processed AccCount}, {ID: defective})
COUNTS0: Counts = ({1: 100, 7: 40}, {1: 3, 7: 1})


def _stamp(ts: int) -> dt.datetime:
    """An OPC UA timestamp (naive UTC) of ``ts`` ns."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts // 1000)


def _nodesets() -> Path:
    """The NodeSet folder of the pinned npm package, installed once into .cache/."""
    folder = CACHE / "node_modules" / "node-opcua-nodesets" / "nodesets"
    if all((folder / f).is_file() for f in FILES):
        return folder
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not found: the companion NodeSets come from npm node-opcua-nodesets")
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--no-save"]
    done = subprocess.run(
        [*cmd, f"node-opcua-nodesets@{NODESETS_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    if done.returncode != 0 or not all((folder / f).is_file() for f in FILES):
        pytest.skip(f"npm install node-opcua-nodesets failed: {done.stderr.strip()[-300:]}")
    return folder


class PlantServer:
    """An asyncua server with the Machinery and PackML NodeSets and three machines built from
    their types: a press (MachineryItemState, OperationCounters, OperationMode), a press with
    a vendor subtype of the item state machine, a PackML filler; and a decoy object named
    like a Machinery part but of a plain type."""

    def __init__(self, nodesets: Path) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plant"
        self.nodesets = nodesets
        self.server = Server()
        self.vars: dict[str, ua.NodeId] = {}
        self.idx = 0  # the test namespace (instances)
        self.packml = 0
        self.mt = 0

    async def _var(self, start: Node, path: str) -> ua.NodeId:
        bp = ua.BrowsePath()
        bp.StartingNode = start.nodeid
        bp.RelativePath = ua.RelativePath.from_string(path)
        [res] = await self.server.iserver.isession.translate_browsepaths_to_nodeids([bp])
        assert res.StatusCode.is_good(), path
        return res.Targets[0].TargetId

    async def _number(self, machine: Node, name: str, idx: int) -> ua.NodeId:
        """The state machine's CurrentState/Number (an optional property of StateVariableType
        that asyncua's instantiate leaves out: added as a server exposing it would)."""
        current = await machine.get_child("0:CurrentState")
        number = await current.add_property(
            ua.NodeId(f"{name}.Number", idx),
            ua.QualifiedName("Number", 0),
            ua.Variant(0, ua.VariantType.UInt32),
        )
        return number.nodeid

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        s.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        for f in FILES:
            # the 2025 DI NodeSet has a DesignToolOnly node without parent that asyncua 1.1
            # refuses; everything the test uses imports
            await s.import_xml(str(self.nodesets / f), strict_mode=False)
        ns = await s.get_namespace_array()
        mach, packml, di = ns.index(MACHINERY), ns.index(PACKML), ns.index(DI)
        self.cnc = ns.index(CNC)
        example = s.get_node(ua.NodeId(5008, self.cnc))
        assert (await example.read_browse_name()).Name == "test"
        await s.delete_nodes([example], recursive=True)
        idx = await s.register_namespace("urn:test:plant")
        self.idx, self.packml = idx, packml
        objects = s.nodes.objects
        item_state = s.get_node(ua.NodeId(1002, mach))
        vendor = await item_state.add_object_type(idx, "AcmeItemStateType")
        for name, state_type in (("Press1", item_state), ("Press2", vendor)):
            press = await objects.add_object(idx, name)
            bb = await press.add_folder(idx, "MachineryBuildingBlocks")
            [sm, *_] = await instantiate(
                bb, state_type, bname=ua.QualifiedName("MachineryItemState", mach), idx=idx
            )
            num = await self._number(sm, f"{name}.state", idx)
            self.vars[f"{name}.state"] = num
            await s.write_attribute_value(num, ua.DataValue(ua.Variant(2, ua.VariantType.UInt32)))
        press1 = (await objects.get_child([f"{idx}:Press1"])).nodeid
        bb1 = s.get_node(press1)
        bb1 = await bb1.get_child([f"{idx}:MachineryBuildingBlocks"])
        [counters, *_] = await instantiate(
            bb1,
            s.get_node(ua.NodeId(1009, mach)),
            bname=ua.QualifiedName("OperationCounters", mach),
            idx=idx,
        )
        self.vars["Press1.cycles"] = await self._var(counters, f"/{di}:OperationCycleCounter")
        await s.write_attribute_value(
            self.vars["Press1.cycles"], ua.DataValue(ua.Variant(5, ua.VariantType.UInt32))
        )
        [mode, *_] = await instantiate(
            bb1,
            s.get_node(ua.NodeId(1008, mach)),
            bname=ua.QualifiedName("MachineryOperationMode", mach),
            idx=idx,
        )
        self.vars["Press1.mode"] = await self._number(mode, "Press1.mode", idx)
        await s.write_attribute_value(
            self.vars["Press1.mode"], ua.DataValue(ua.Variant(3, ua.VariantType.UInt32))
        )
        [filler, *_] = await instantiate(
            objects,
            s.get_node(ua.NodeId(6, packml)),
            bname=ua.QualifiedName("Filler1", idx),
            idx=idx,
        )
        machine = await filler.get_child(f"{packml}:BaseStateMachine")
        self.vars["Filler1.state"] = await self._number(machine, "Filler1.state", idx)
        await s.write_attribute_value(
            self.vars["Filler1.state"], ua.DataValue(ua.Variant(6, ua.VariantType.UInt32))
        )
        # PackMLAdminObjectType's optional counts (OPC 30050 6.3.4), arrays of
        # PackMLCountDataType (6.5.3) one element per material, as a packaging line exposes
        # them; and the scalar totals a PLC programmer might map by hand
        admin = await filler.get_child(f"{packml}:Admin")
        for name in ("ProdProcessedCount", "ProdDefectiveCount"):
            var = await admin.add_variable(
                ua.NodeId(f"Filler1.{name}", idx),
                ua.QualifiedName(name, packml),
                ua.Variant([], ua.VariantType.ExtensionObject),
                datatype=ua.NodeId(14, packml),
            )
            await var.write_value_rank(1)
            self.vars[f"Filler1.{name}"] = var.nodeid
        for name in ("ProcessedTotal", "DefectiveTotal"):
            var = await filler.add_variable(
                ua.NodeId(f"Filler1.{name}", idx),
                ua.QualifiedName(name, idx),
                0,
                ua.VariantType.Int32,
            )
            self.vars[f"Filler1.{name}"] = var.nodeid
        await self.counts(COUNTS0, DAY.start_ns - 2 * H)
        mt = ns.index(MACHINE_TOOL)
        [mill, *_] = await instantiate(
            objects,
            s.get_node(ua.NodeId(13, mt)),
            bname=ua.QualifiedName("Mill1", idx),
            idx=idx,
            instantiate_optional=False,
        )
        monitoring = await mill.get_child(f"{mt}:Monitoring")
        [channel, *_] = await instantiate(
            monitoring,
            s.get_node(ua.NodeId(16, mt)),
            bname=ua.QualifiedName("Channel1", idx),
            idx=idx,
            instantiate_optional=False,
        )
        self.vars["Mill1.channel_state"] = await self._var(channel, f"/{mt}:ChannelState")
        # OPC 40501-1 8.4.5: ActiveProgram/JobNodeId names the job of the active program (null
        # until a job runs); the jobs (8.4.3 ProductionJobType) come and go under ProductionPlan
        self.mt = mt
        production = await mill.get_child(f"{mt}:Production")
        active = await production.get_child(f"{mt}:ActiveProgram")
        job_node = await active.add_variable(
            ua.NodeId("Mill1.JobNodeId", idx),
            ua.QualifiedName("JobNodeId", mt),
            ua.NodeId(),
            ua.VariantType.NodeId,
        )
        self.vars["Mill1.JobNodeId"] = job_node.nodeid
        self.plan = await production.add_object(
            ua.NodeId("Mill1.Plan", idx), ua.QualifiedName("ProductionPlan", mt)
        )
        self.jobs: dict[str, Node] = {}
        # Mill2: a machine tool with the lifetime part counter in both places (1.02
        # OperationCounters, 8.3.9; the deprecated Production/Statistics, 8.4.12) and a job
        # pointer: one count_total, the others measurements
        [mill2, *_] = await instantiate(
            objects,
            s.get_node(ua.NodeId(13, mt)),
            bname=ua.QualifiedName("Mill2", idx),
            idx=idx,
            instantiate_optional=False,
        )
        watch = await mill2.get_child([f"{mt}:Monitoring", f"{mt}:MachineTool"])
        [counters2, *_] = await instantiate(
            watch,
            s.get_node(ua.NodeId(1009, mach)),
            bname=ua.QualifiedName("OperationCounters", di),
            idx=idx,
        )
        await counters2.add_variable(
            ua.NodeId("Mill2.Parts", idx),
            ua.QualifiedName("PartsProducedInLifetime", mt),
            7,
            ua.VariantType.UInt64,
        )
        production2 = await mill2.get_child(f"{mt}:Production")
        stats = await production2.add_object(
            ua.NodeId("Mill2.Stats", idx), ua.QualifiedName("Statistics", mt)
        )
        await stats.add_variable(
            ua.NodeId("Mill2.Stats.Parts", idx),
            ua.QualifiedName("PartsProducedInLifetime", mt),
            7,
            ua.VariantType.UInt32,
        )
        active2 = await production2.get_child(f"{mt}:ActiveProgram")
        await active2.add_variable(
            ua.NodeId("Mill2.JobNodeId", idx),
            ua.QualifiedName("JobNodeId", mt),
            ua.NodeId(),
            ua.VariantType.NodeId,
        )
        await self._mill3(mill2.nodeid.NamespaceIndex)
        await self._lathe(idx)
        # a decoy: named like a Machinery part, of a plain type: not a machine
        decoy = await objects.add_object(idx, "Oven")
        fake = await decoy.add_object(
            ua.NodeId("Oven.S", idx), ua.QualifiedName("MachineryItemState", mach)
        )
        await fake.add_variable(idx, "CurrentState", 3)
        await s.start()

    async def _mill3(self, idx: int) -> None:
        """Mill3: a machine tool whose jobs count their parts and good parts (OPC 40501-1 1.02
        8.4.3 ProductionJobType.PartsCompleted / PartsGood, optional), a lifetime part counter
        (8.3.9) and a channel; JobM1 is active at discovery. Beside them, the machine's own
        cumulative total and good counters a PLC programmer would map by hand."""
        s, mt = self.server, self.mt
        mach = (await s.get_namespace_array()).index(MACHINERY)
        di = (await s.get_namespace_array()).index(DI)
        [mill, *_] = await instantiate(
            s.nodes.objects,
            s.get_node(ua.NodeId(13, mt)),
            bname=ua.QualifiedName("Mill3", idx),
            idx=idx,
            instantiate_optional=False,
        )
        monitoring = await mill.get_child(f"{mt}:Monitoring")
        [channel, *_] = await instantiate(
            monitoring,
            s.get_node(ua.NodeId(16, mt)),
            bname=ua.QualifiedName("Channel1", idx),
            idx=idx,
            instantiate_optional=False,
        )
        self.vars["Mill3.channel_state"] = await self._var(channel, f"/{mt}:ChannelState")
        await self.write("Mill3.channel_state", 2, DAY.start_ns - 2 * H)  # Reset
        watch = await mill.get_child([f"{mt}:Monitoring", f"{mt}:MachineTool"])
        [counters, *_] = await instantiate(
            watch,
            s.get_node(ua.NodeId(1009, mach)),
            bname=ua.QualifiedName("OperationCounters", di),
            idx=idx,
        )
        await counters.add_variable(
            ua.NodeId("Mill3.Lifetime", idx),
            ua.QualifiedName("PartsProducedInLifetime", mt),
            500,
            ua.VariantType.UInt64,
        )
        for name in ("Total", "Good"):
            var = await mill.add_variable(
                ua.NodeId(f"Mill3.{name}", idx),
                ua.QualifiedName(name, idx),
                0,
                ua.VariantType.UInt32,
            )
            self.vars[f"Mill3.{name}"] = var.nodeid
            await self.write(f"Mill3.{name}", 0, DAY.start_ns - 2 * H)
        production = await mill.get_child(f"{mt}:Production")
        active = await production.get_child(f"{mt}:ActiveProgram")
        pointer = await active.add_variable(
            ua.NodeId("Mill3.JobNodeId", idx),
            ua.QualifiedName("JobNodeId", mt),
            ua.NodeId(),
            ua.VariantType.NodeId,
        )
        self.vars["Mill3.JobNodeId"] = pointer.nodeid
        self.plan3 = await production.add_object(
            ua.NodeId("Mill3.Plan", idx), ua.QualifiedName("ProductionPlan", mt)
        )
        await self.new_job3("JobM1", DAY.start_ns - 2 * H)
        await self.activate3("JobM1", DAY.start_ns - 2 * H)

    async def _lathe(self, idx: int) -> None:
        """Lathe1: a CNC (OPC 40502) with its CncInterface and one channel, Reset and Stopped."""
        s, cnc = self.server, self.cnc
        lathe = await s.nodes.objects.add_object(idx, "Lathe1")
        [interface, *_] = await instantiate(
            lathe,
            s.get_node(ua.NodeId(1007, cnc)),  # CncInterfaceType
            bname=ua.QualifiedName("CncInterface", cnc),
            idx=idx,
            instantiate_optional=False,
        )
        channels = await interface.get_child(f"{cnc}:CncChannelList")
        [channel, *_] = await instantiate(
            channels,
            s.get_node(ua.NodeId(1002, cnc)),  # CncChannelType
            bname=ua.QualifiedName("Channel1", idx),
            idx=idx,
            instantiate_optional=False,
        )
        for name, value in (("ActStatus", 2), ("ActProgramStatus", 0), ("ActOperationMode", 2)):
            self.vars[f"Lathe1.{name}"] = await self._var(channel, f"/{cnc}:{name}")
            await self.write(f"Lathe1.{name}", value, DAY.start_ns - 2 * H, ua.VariantType.Int32)

    async def new_job3(self, name: str, ts: int) -> None:
        """A job of Mill3 with the optional PartsCompleted and PartsGood, both 0 at ``ts``."""
        [job, *_] = await instantiate(
            self.plan3,
            self.server.get_node(ua.NodeId(29, self.mt)),
            bname=ua.QualifiedName(name, self.idx),
            idx=self.idx,
            instantiate_optional=False,
        )
        self.jobs[name] = job
        for part in ("PartsCompleted", "PartsGood"):
            var = await job.add_variable(
                ua.NodeId(f"{name}.{part}", self.idx),
                ua.QualifiedName(part, self.mt),
                0,
                ua.VariantType.UInt32,
            )
            self.vars[f"{name}.{part}"] = var.nodeid
            await self.write(f"{name}.{part}", 0, ts)

    async def activate3(self, job: str, ts: int) -> None:
        when = _stamp(ts)
        dv = ua.DataValue(
            ua.Variant(self.jobs[job].nodeid, ua.VariantType.NodeId),
            SourceTimestamp=when,
            ServerTimestamp=when,
        )
        await self.server.write_attribute_value(self.vars["Mill3.JobNodeId"], dv)

    async def write(
        self, name: str, value: int, ts: int, vtype: ua.VariantType = ua.VariantType.UInt32
    ) -> None:
        when = _stamp(ts)
        dv = ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=when, ServerTimestamp=when)
        await self.server.write_attribute_value(self.vars[name], dv)

    async def counts(self, counts: Counts, ts: int) -> None:
        """Filler1's ProdProcessedCount and ProdDefectiveCount arrays ({ID: AccCount} of each;
        Count, the current job's, is a tenth of it) and the scalar totals, stamped ``ts``."""
        make = ua.PackMLCountDataType  # registered by import_xml from the NodeSet's definition
        when = _stamp(ts)
        for name, by_id in zip(("Processed", "Defective"), counts, strict=True):
            items = [
                make(ID=i, Name=MATERIALS[i], Count=acc // 10, AccCount=acc)
                for i, acc in by_id.items()
            ]
            await self.server.write_attribute_value(
                self.vars[f"Filler1.Prod{name}Count"],
                ua.DataValue(
                    ua.Variant(items, ua.VariantType.ExtensionObject),
                    SourceTimestamp=when,
                    ServerTimestamp=when,
                ),
            )
            await self.server.write_attribute_value(
                self.vars[f"Filler1.{name}Total"],
                ua.DataValue(
                    ua.Variant(sum(by_id.values()), ua.VariantType.Int32),
                    SourceTimestamp=when,
                    ServerTimestamp=when,
                ),
            )

    async def new_job(self, name: str, runs: int, ts: int) -> ua.NodeId:
        """A ProductionJobType instance under Mill1's ProductionPlan, RunsCompleted ``runs``."""
        [job, *_] = await instantiate(
            self.plan,
            self.server.get_node(ua.NodeId(29, self.mt)),
            bname=ua.QualifiedName(name, self.idx),
            idx=self.idx,
            instantiate_optional=False,
        )
        self.jobs[name] = job
        self.vars[f"{name}.runs"] = await self._var(job, f"/{self.mt}:RunsCompleted")
        await self.runs(name, runs, ts)
        return job.nodeid

    async def runs(self, job: str, runs: int, ts: int) -> None:
        when = _stamp(ts)
        dv = ua.DataValue(
            ua.Variant(runs, ua.VariantType.UInt32), SourceTimestamp=when, ServerTimestamp=when
        )
        await self.server.write_attribute_value(self.vars[f"{job}.runs"], dv)

    async def activate(self, job: str | None, ts: int) -> None:
        """Mill1's ActiveProgram/JobNodeId: the job's NodeId (null NodeId for none)."""
        when = _stamp(ts)
        node = self.jobs[job].nodeid if job else ua.NodeId()
        dv = ua.DataValue(
            ua.Variant(node, ua.VariantType.NodeId), SourceTimestamp=when, ServerTimestamp=when
        )
        await self.server.write_attribute_value(self.vars["Mill1.JobNodeId"], dv)

    async def remove_job(self, job: str) -> None:
        await self.server.delete_nodes([self.jobs.pop(job)], recursive=True)

    async def stop(self) -> None:
        await self.server.stop()


@pytest.fixture(scope="module")
def nodesets() -> Path:
    return _nodesets()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plant(nodesets: Path) -> AsyncIterator[PlantServer]:
    srv = PlantServer(nodesets)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def _fragment(plant: PlantServer) -> str:
    from asyncua import Client

    client = Client(plant.endpoint, timeout=4)
    await client.connect()
    try:
        return format_fragment(await discover_on(client, plant.endpoint))
    finally:
        await client.disconnect()


def _site(devices_yaml: str) -> SiteConfig:
    return load_site_text("site: {id: t, name: test, timezone: UTC}\n" + devices_yaml)


async def test_the_table_cites_a_specification_on_every_row() -> None:
    table = load_table()
    assert {a.id for a in table.anchors} >= {
        "machine_tool",
        "machine_tool_channel",
        "packml",
        "cnc_channel",
        "machinery_item_state",
        "machinery_counters",
    }
    for anchor in table.anchors:
        assert anchor.spec.startswith("OPC ")
        for row in anchor.points:
            assert row.spec.startswith("OPC "), row.id
            if row.state_map:
                assert set(row.state_map.values()) <= {"producing", "idle", "down", "offline"}


async def test_machines_found_by_type_not_by_name(plant: PlantServer) -> None:
    text = await _fragment(plant)
    site = _site(text)  # the fragment is a valid site file as it stands
    assert [d.id for d in site.devices] == [
        "filler1",
        "lathe1",
        "mill1",
        "mill2",
        "mill3",
        "press1",
        "press2",
    ]
    press1 = site.device("press1")
    assert [(p.id, p.role) for p in press1.points] == [
        ("state", "state"),
        ("operation_mode", "measurement"),
        ("cycles", "count_total"),
        ("operation_s", "measurement"),
    ]
    state = press1.point("state")
    assert state.state_map == {"0": "offline", "1": "down", "2": "idle", "3": "producing"}
    assert state.opcua is not None
    assert state.opcua.browse_path is not None
    assert state.opcua.browse_path.endswith(":MachineryItemState/0:CurrentState/0:Number")
    # the vendor subtype is recognised through HasSubtype
    assert site.device("press2").point("state").state_map == state.state_map
    filler = site.device("filler1")
    fstate = filler.point("state")
    assert fstate.state_map is not None
    assert fstate.state_map["6"] == "producing"
    assert fstate.state_map["11"] == "down"
    mill = site.device("mill1")
    assert [(p.id, p.role) for p in mill.points] == [
        ("operation_mode", "measurement"),
        ("runs_completed", "count_total"),
        ("channel_state", "state"),
    ]
    cstate = mill.point("channel_state")
    assert cstate.state_map == {"0": "producing", "1": "down", "2": "idle"}
    assert cstate.opcua is not None
    assert cstate.opcua.browse_path is not None
    names = [seg.split(":", 1)[1] for seg in cstate.opcua.browse_path.split("/")]
    assert names == ["Objects", "Mill1", "Monitoring", "Channel1", "ChannelState"]
    assert "not collected: active_program (OPC 40501-1" in text
    # PackML's counts are arrays of structures: one point per material, its AccCount
    assert [(p.id, p.role) for p in filler.points] == [
        ("state", "state"),
        ("unit_mode", "measurement"),
        ("processed_1", "count_total"),
        ("processed_7", "count_total"),
        ("defective_1", "count_scrap"),
        ("defective_7", "count_scrap"),
    ]
    p7 = filler.point("processed_7").opcua
    assert p7 is not None
    assert (p7.element, p7.field) == ({"ID": 7}, "AccCount")
    assert p7.browse_path is not None
    names = [seg.split(":", 1)[1] for seg in p7.browse_path.split("/")]
    assert names == ["Objects", "Filler1", "Admin", "ProdProcessedCount"]
    assert "# ID 7: Cola 1 l" in text
    assert "# value at discovery: 40" in text
    assert "value at discovery: 6" in text
    assert "OPC 40001-1 (Machinery Basic Building Blocks) 1.04" in text


async def test_discover_command_line(
    plant: PlantServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = await asyncio.to_thread(cli_main, ["discover", "opcua", plant.endpoint])
    out = capsys.readouterr().out
    assert rc == 0
    assert yaml.safe_load(out)["devices"][0]["id"] == "filler1"
    bad = await asyncio.to_thread(cli_main, ["discover", "opcua", "opc.tcp://127.0.0.1:1/x"])
    err = capsys.readouterr().err
    assert bad == 1
    assert err.startswith("error: opc.tcp://127.0.0.1:1/x")
    assert "Traceback" not in err


HAND_WRITTEN = """\
devices:
  - id: press1
    name: press (by hand)
    opcua: {{endpoint: "{endpoint}", publishing_interval_ms: 50}}
    ideal_cycle_s: 600
    key_equipment: true
    points:
      - id: state
        role: state
        opcua: {{node_id: "{state}"}}
        state_map: {{"0": offline, "1": down, "2": idle, "3": producing}}
      - id: cycles
        role: count_total
        opcua: {{node_id: "{cycles}"}}
"""


async def _collect(
    sites: list[SiteConfig], plant: PlantServer, steps: list[tuple[str, int, int]]
) -> list[MemReader]:
    """Run one connector per site on the same server; write each step and wait until every
    connector has recorded it (no timing: each value is seen before the next is written)."""
    sinks = [RecordingSink() for _ in sites]
    connectors = [OpcUaConnector(s.devices[0].opcua, (s.devices[0],)) for s in sites]  # type: ignore[arg-type]
    async with running(connectors[0], sinks[0]), running(connectors[1], sinks[1]):
        for sink in sinks:
            await sink.wait(lambda sink=sink: len(sink.of("press1", "cycles")) >= 1, what="first")
        for name, value, ts in steps:
            await plant.write(name, value, ts)
            point = name.split(".")[1]
            for sink in sinks:
                await sink.wait(
                    lambda sink=sink, point=point, ts=ts: any(
                        s.ts == ts for s in sink.of("press1", point)
                    ),
                    what=f"{name}={value}",
                )
    readers = []
    for sink in sinks:
        rd = MemReader()
        for point in ("state", "cycles"):
            got = [s for s in sink.of("press1", point) if s.ts >= DAY.start_ns - H]
            rd.add("press1", point, [s.ts for s in got], [s.value for s in got])
        # the collector's heartbeat (10 s) through the day: the data reach the day's end
        beats = range(DAY.start_ns - H, DAY.end_ns + H, 10_000_000_000)
        rd.add("_gateway", "alive", beats, [1.0] * len(beats))
        readers.append(rd)
    return readers


async def test_discovered_fragment_gives_the_oee_of_a_hand_written_mapping(
    plant: PlantServer,
) -> None:
    text = await _fragment(plant)
    fragment = yaml.safe_load(text)
    press = next(d for d in fragment["devices"] if d["id"] == "press1")
    # what the engineer adds: the ideal cycle time (and a faster publishing for the test)
    press["ideal_cycle_s"] = 600
    press["opcua"]["publishing_interval_ms"] = 50
    discovered = _site(yaml.safe_dump({"devices": [press]}))
    hand = _site(
        HAND_WRITTEN.format(
            endpoint=plant.endpoint,
            state=plant.vars["Press1.state"].to_string(),
            cycles=plant.vars["Press1.cycles"].to_string(),
        )
    )
    s = DAY.start_ns
    steps = [
        ("Press1.state", 3, s - H),  # Executing since before the day
        ("Press1.cycles", 0, s - H),
        ("Press1.cycles", 30, s + 6 * H),  # 30 parts in 6 h
        ("Press1.state", 2, s + 6 * H),  # NotExecuting: idle 2 h
        ("Press1.state", 1, s + 8 * H),  # OutOfService: down 2 h
        ("Press1.state", 3, s + 10 * H),  # Executing again
        ("Press1.cycles", 90, s + 20 * H),  # 60 more in 10 h
        ("Press1.state", 0, s + 20 * H),  # NotAvailable: offline for the rest of the day
    ]
    found, by_hand = await _collect([discovered, hand], plant, steps)
    a = compute_period(found, discovered, DAY)
    b = compute_period(by_hand, hand, DAY)
    assert a.machines == b.machines
    oee_a, oee_b = a.kpis["oee"].value, b.kpis["oee"].value
    assert oee_a == oee_b
    # by hand: 16 h producing of 20 h known (NotAvailable 20:00-24:00 is offline, excluded):
    # availability 16/20; 90 cycles x 600 s = 15 h ideal in 16 h run: effectiveness 15/16;
    # no scrap point: quality 1; OEE = 0.8 x 0.9375 = 75 %
    inputs = {k.name: k.value for k in a.kpis["oee"].inputs}
    assert inputs["availability"] == pytest.approx(0.8)
    assert inputs["effectiveness"] == pytest.approx(0.9375)
    assert inputs["offline"] == pytest.approx(4.0)
    assert oee_a == pytest.approx(75.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('        spec: "OPC 40501-1 ChannelMonitoringType.ChannelState; ChannelState"\n', "cites"),
        ('        state_map: {"0": producing, "1": down, "2": idle}\n', "needs a state_map"),
        ("    type: mt:16  # ChannelMonitoringType\n", "type must be"),
    ],
)
async def test_a_table_row_without_its_citation_or_map_is_refused(
    tmp_path: Path, change: str, message: str
) -> None:
    from connectors.opcua.companion import TABLE, TableError

    text = TABLE.read_text(encoding="utf-8")
    assert change in text
    broken = tmp_path / "companion.yaml"
    broken.write_text(text.replace(change, "", 1), encoding="utf-8")
    with pytest.raises(TableError, match=message):
        load_table(broken)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("needs: [parts_completed]", "needs: [parts_complete]", "name no row"),
        ("yields_to: [parts_good]", "yields_to: [part_good]", "name no row"),
        ("        follow: mt:PartsGood\n", "", "target_optional is for a follow row"),
    ],
)
async def test_a_table_row_naming_a_missing_row_is_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    from connectors.opcua.companion import TABLE, TableError

    text = TABLE.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "companion.yaml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(TableError, match=message):
        load_table(broken)


async def test_a_server_without_companion_types_gives_an_empty_fragment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.opcua.helpers import PlainServer

    srv = PlainServer(free_port())
    await srv.start()
    try:
        rc = await asyncio.to_thread(cli_main, ["discover", "opcua", srv.endpoint])
    finally:
        await srv.stop()
    out = capsys.readouterr().out
    assert rc == 0
    assert "# no machine instance of the table's types was found" in out
    assert yaml.safe_load(out) == {"devices": []}


PACKML_BY_HAND = """\
devices:
  - id: filler1
    name: filler (by hand, the PLC's scalar totals)
    opcua: {{endpoint: "{endpoint}", publishing_interval_ms: 50}}
    ideal_cycle_s: 400
    key_equipment: true
    points:
      - id: state
        role: state
        opcua: {{node_id: "{state}"}}
        state_map: {{"2": idle, "4": idle, "6": producing, "9": down}}
      - id: processed
        role: count_total
        opcua: {{node_id: "{processed}"}}
      - id: defective
        role: count_scrap
        opcua: {{node_id: "{defective}"}}
"""


async def _collect_filler(
    sites: list[SiteConfig], plant: PlantServer, steps: list[tuple[int, int, Counts]]
) -> list[tuple[MemReader, dict[str, dict[int, float]]]]:
    """As :func:`_collect`, for Filler1: each step writes the state and both count arrays
    (and the scalar totals) at ``ts``; waits until every connector has every point's sample."""
    sinks = [RecordingSink() for _ in sites]
    connectors = [OpcUaConnector(s.devices[0].opcua, (s.devices[0],)) for s in sites]  # type: ignore[arg-type]
    points = [[p.id for p in s.devices[0].points] for s in sites]
    async with contextlib.AsyncExitStack() as stack:
        for c, sink in zip(connectors, sinks, strict=True):
            await stack.enter_async_context(running(c, sink))
        for sink, ids in zip(sinks, points, strict=True):
            await sink.wait(lambda sink=sink, ids=ids: all(sink.of("filler1", p) for p in ids))
        before = COUNTS0
        for state, ts, counts in steps:
            await plant.write("Filler1.state", state, ts)
            changed = counts != before  # a value written again unchanged is not notified
            if changed:
                await plant.counts(counts, ts)
            before = counts
            for sink, ids in zip(sinks, points, strict=True):
                wanted = ids if changed else ["state"]
                await sink.wait(
                    lambda sink=sink, wanted=wanted, ts=ts: all(
                        any(s.ts == ts for s in sink.of("filler1", p)) for p in wanted
                    ),
                    what=f"step at {ts}: {wanted}",
                )
    out = []
    for sink, ids in zip(sinks, points, strict=True):
        assert not [s for s in sink.samples if s.quality.name != "GOOD"], sink.samples
        rd = MemReader()
        series = {}
        for point in ids:
            # a polled value is read again and again: one sample per source timestamp
            got = {s.ts: s.value for s in sink.of("filler1", point) if s.ts < DAY.end_ns}
            rd.add("filler1", point, list(got), list(got.values()))
            series[point] = got
        beats = range(DAY.start_ns - H, DAY.end_ns + H, 10_000_000_000)
        rd.add("_gateway", "alive", beats, [1.0] * len(beats))
        out.append((rd, series))
    return out


async def test_packml_counts_from_discovery_give_the_oee_of_a_hand_written_mapping(
    plant: PlantServer,
) -> None:
    """ProdProcessedCount / ProdDefectiveCount, arrays of structures, collected through the
    discovered element/field points (subscribed, and polled) give the counts and OEE of the
    scalar totals mapped by hand."""
    text = await _fragment(plant)
    filler = next(d for d in yaml.safe_load(text)["devices"] if d["id"] == "filler1")
    filler["ideal_cycle_s"] = 400
    filler["opcua"]["publishing_interval_ms"] = 50
    filler["points"] = [p for p in filler["points"] if p["id"] != "unit_mode"]
    subscribed = _site(yaml.safe_dump({"devices": [filler]}))
    for p in filler["points"]:
        if p["role"] != "state":
            p["opcua"]["mode"] = "poll"
    polled = _site(yaml.safe_dump({"devices": [filler]}))
    hand = _site(
        PACKML_BY_HAND.format(
            endpoint=plant.endpoint,
            state=plant.vars["Filler1.state"].to_string(),
            processed=plant.vars["Filler1.ProcessedTotal"].to_string(),
            defective=plant.vars["Filler1.DefectiveTotal"].to_string(),
        )
    )
    s = DAY.start_ns
    steps: list[tuple[int, int, Counts]] = [
        (4, s - 2 * H, COUNTS0),  # Idle (a change: an unchanged value is not notified)
        (6, s - H, COUNTS0),  # Execute since before the day
        (2, s + 6 * H, ({1: 160, 7: 40}, {1: 5, 7: 1})),  # 60 of material 1, 2 defective
        (9, s + 8 * H, ({1: 160, 7: 40}, {1: 5, 7: 1})),  # Aborted: down 2 h
        (6, s + 10 * H, ({1: 160, 7: 40}, {1: 5, 7: 1})),  # Execute again
        (4, s + 20 * H, ({1: 160, 7: 100}, {1: 5, 7: 4})),  # 60 of material 7, 3 defective
    ]
    (rd_a, ser_a), (_, ser_b), (rd_c, _) = await _collect_filler(
        [subscribed, polled, hand], plant, steps
    )
    # polled, the structure fields give the samples the subscription gives
    assert ser_b == ser_a
    assert ser_a["processed_7"][s + 20 * H] == 100.0
    assert ser_a["defective_1"][s + 6 * H] == 5.0
    a = compute_period(rd_a, subscribed, DAY)
    c = compute_period(rd_c, hand, DAY)
    assert a.machines == c.machines
    assert a.kpis["oee"].value == c.kpis["oee"].value
    # 60 + 60 processed, 2 + 3 defective; producing 16 h of 24 h (idle 6 h, down 2 h):
    # availability 2/3; 120 x 400 s = 13 1/3 h ideal in 16 h: effectiveness 5/6;
    # quality 115/120; OEE = 2/3 x 5/6 x 115/120
    m = a.machines[0]
    assert (m["quantities"]["pq"], m["quantities"]["sq"]) == (120.0, 5.0)
    assert m["availability"] == pytest.approx(2 / 3)
    assert m["effectiveness"] == pytest.approx(5 / 6)
    assert m["oee"] == pytest.approx(2 / 3 * 5 / 6 * 115 / 120)


async def test_a_missing_element_or_field_is_a_bad_sample_not_a_crash(plant: PlantServer) -> None:
    """Subscribed and polled: an element not (yet) in the array, a field the structure lacks,
    an index past the end are bad samples with their status; the element appearing later is
    collected; the connector keeps running."""
    path = f"0:Objects/{plant.idx}:Filler1/{plant.packml}:Admin/{plant.packml}:ProdProcessedCount"
    points = [
        {
            "id": "m99",
            "role": "count_total",
            "opcua": {"browse_path": path, "element": {"ID": 99}, "field": "AccCount"},
        },
        {
            "id": "m99p",
            "role": "count_total",
            "opcua": {
                "browse_path": path,
                "element": {"ID": 99},
                "field": "AccCount",
                "mode": "poll",
            },
        },
        {
            "id": "nofield",
            "opcua": {"browse_path": path, "element": {"ID": 1}, "field": "Speed", "mode": "poll"},
        },
        {"id": "past", "opcua": {"browse_path": path, "index": 5, "field": "AccCount"}},
        {
            "id": "scalar",
            "opcua": {
                "browse_path": path.rsplit("/", 2)[0]
                + f"/{plant.packml}:BaseStateMachine/0:CurrentState/0:Number",
                "field": "AccCount",
            },
        },
        {
            "id": "first",
            "opcua": {"browse_path": path, "index": 0, "field": "Name"},
            "datatype": "text",
            "enum": {"Cola 0.5 l": 1},
        },
    ]
    site = site_of([device("f", plant.endpoint, points, publishing_interval_ms=50)])
    dev = site.devices[0]
    sink = RecordingSink()
    connector = OpcUaConnector(dev.opcua, (dev,))  # type: ignore[arg-type]

    def status(point: str) -> str | None:
        got = sink.of("f", point)
        return got[-1].status if got else None

    async with running(connector, sink) as task:
        await sink.wait(
            lambda: all(status(p["id"]) is not None for p in points), what="first samples"
        )
        assert status("m99") == status("m99p") == "no_element"
        assert status("nofield") == "no_field"
        assert status("past") == "no_element"
        assert status("scalar") == "not_structure"
        assert sink.of("f", "first")[-1].value == 1.0  # text field through the enum
        ts = DAY.start_ns + 22 * H
        await plant.counts(({1: 170, 7: 100, 99: 12}, {1: 5, 7: 4}), ts)
        for p in ("m99", "m99p"):
            await sink.wait(
                lambda p=p: any(s.ts == ts and s.value == 12.0 for s in sink.of("f", p)),
                what=f"{p} once ID 99 exists",
            )
        assert not task.done()
    bad = [s for s in sink.samples if s.point in ("m99", "nofield") and s.quality.name == "BAD"]
    assert all(s.value != s.value for s in bad)  # NaN, never a number


async def test_machine_tool_runs_follow_the_active_job(plant: PlantServer) -> None:
    """Discovery writes RunsCompleted as a point following ActiveProgram/JobNodeId; collected,
    it sums what each job completes while active: a new job counts from its first reading, a
    resumed job's earlier runs are not counted again, a removed job is looked up again, no
    active job counts nothing."""
    text = await _fragment(plant)
    mill = next(d for d in yaml.safe_load(text)["devices"] if d["id"] == "mill1")
    runs = next(p for p in mill["points"] if p["id"] == "runs_completed")
    assert runs["role"] == "count_total"
    assert runs["opcua"]["follow"] == f"{plant.mt}:RunsCompleted"
    assert runs["opcua"]["browse_path"].endswith(f"{plant.mt}:ActiveProgram/{plant.mt}:JobNodeId")
    assert "OPC 40501-1 8.4.5 ProductionActiveProgramType.JobNodeId" in text
    now_runs = {**runs, "id": "runs_now", "role": "measurement"}
    mill["points"] = [runs, now_runs]
    mill["opcua"]["publishing_interval_ms"] = 50
    site = _site(yaml.safe_dump({"devices": [mill]}))
    dev = site.devices[0]
    sink = RecordingSink()
    connector = OpcUaConnector(dev.opcua, (dev,))  # type: ignore[arg-type]
    m = 60_000_000_000
    t0 = DAY.start_ns

    def last(point: str) -> tuple[float, str]:
        got = sink.of("mill1", point)
        return (got[-1].value, got[-1].status) if got else (math.nan, "")

    async def until(point: str, value: float, what: str) -> None:
        await sink.wait(lambda: last(point)[0] == value, what=f"{what}: {point}={value}")

    async with running(connector, sink) as task:
        await sink.wait(lambda: bool(sink.of("mill1", "runs_completed")), what="first")
        assert last("runs_completed")[1] == "no_target"  # no job yet, nothing stored yet
        await plant.new_job("JobA", 0, t0 + m)
        await plant.activate("JobA", t0 + m)
        await until("runs_completed", 0.0, "JobA active")
        await plant.runs("JobA", 3, t0 + 2 * m)
        await until("runs_completed", 3.0, "3 runs of JobA")
        # JobB was interrupted earlier at 5 runs and resumes: its 5 are not counted again
        await plant.new_job("JobB", 5, t0 + 3 * m)
        await plant.activate("JobB", t0 + 4 * m)
        await until("runs_now", 5.0, "JobB active")
        assert last("runs_completed")[0] == 3.0
        await plant.runs("JobB", 7, t0 + 5 * m)
        await until("runs_completed", 5.0, "2 runs of JobB")
        # the machine removes JobB before the pointer moves on: looked up again, no crash
        await plant.remove_job("JobB")
        await sink.wait(
            lambda: last("runs_completed")[1] in ("BadNodeIdUnknown", "BadNoMatch"),
            what="JobB gone",
        )
        await plant.activate(None, t0 + 6 * m)
        await until("runs_completed", 5.0, "no active job")
        assert last("runs_now")[1] == "no_target"
        await plant.activate("JobA", t0 + 7 * m)  # JobA at 3: a baseline
        await until("runs_now", 3.0, "JobA again")
        await plant.runs("JobA", 4, t0 + 8 * m)
        await until("runs_completed", 6.0, "1 more run of JobA")
        assert not task.done()
    good = [s.value for s in sink.of("mill1", "runs_completed") if s.status == ""]
    assert good == sorted(good)  # a running sum never goes back
    assert max(good) == 6.0


async def test_one_counter_source_per_machine_tool(plant: PlantServer) -> None:
    """PartsProducedInLifetime (OperationCounters, 1.02) is the machine's count_total; the
    deprecated Statistics copy, the followed RunsCompleted and the cycle counter become
    measurements (no double count)."""
    text = await _fragment(plant)
    mill2 = _site(text).device("mill2")
    roles = {p.id: p.role for p in mill2.points}
    assert [k for k, v in roles.items() if v.startswith("count_")] == ["parts_lifetime"]
    assert roles["parts_lifetime_statistics"] == "measurement"
    assert roles["runs_completed"] == "measurement"
    assert roles["cycles"] == "measurement"
    assert "# count_total taken from parts_lifetime" in text


MILL_BY_HAND = """\
devices:
  - id: mill3
    name: mill (by hand, the PLC's cumulative counters)
    opcua: {{endpoint: "{endpoint}", publishing_interval_ms: 50}}
    ideal_cycle_s: 1200
    key_equipment: true
    points:
      - id: state
        role: state
        opcua: {{node_id: "{state}"}}
        state_map: {{"0": producing, "1": down, "2": idle}}
      - id: total
        role: count_total
        opcua: {{node_id: "{total}"}}
      - id: good
        role: count_good
        opcua: {{node_id: "{good}"}}
"""


async def test_machine_tool_part_quality_from_the_job_counters(plant: PlantServer) -> None:
    """Where the active job has PartsCompleted and PartsGood (OPC 40501-1 1.02 8.4.3), both are
    followed from ActiveProgram/JobNodeId as count_total and count_good (the lifetime counter
    and RunsCompleted become measurements); collected across a job change they give the
    quantities, quality rate and OEE of the machine's own cumulative counters mapped by hand."""
    text = await _fragment(plant)
    mill = next(d for d in yaml.safe_load(text)["devices"] if d["id"] == "mill3")
    roles = {p["id"]: p["role"] for p in mill["points"]}
    assert {k: v for k, v in roles.items() if v.startswith("count_")} == {
        "parts_completed": "count_total",
        "parts_good": "count_good",
    }
    assert roles["parts_lifetime"] == roles["runs_completed"] == "measurement"
    assert "# count_total taken from parts_good" in text  # the lifetime counter's comment
    good = next(p for p in mill["points"] if p["id"] == "parts_good")
    assert good["opcua"]["follow"] == f"{plant.mt}:PartsGood"
    assert good["opcua"]["mode"] == "poll"
    # Mill1 has no active job at discovery: the optional counters are comments, not points
    assert "not collected: parts_good (OPC 40501-1 1.02 8.4.5" in text
    assert "nothing pointed to at discovery (no active job)" in text
    mill["ideal_cycle_s"] = 1200
    mill["opcua"]["publishing_interval_ms"] = 50
    mill["points"] = [
        p for p in mill["points"] if p["id"] in ("channel_state", "parts_completed", "parts_good")
    ]
    # polled points go stale after 3 heartbeats, and the recorder stores one sample per
    # heartbeat; the pinned source timestamps here jump by hours: both sites hold values a day
    kpi = "kpi: {stale_after_s: 86400}\n"
    discovered = _site(kpi + yaml.safe_dump({"devices": [mill]}))
    hand = _site(
        kpi
        + MILL_BY_HAND.format(
            endpoint=plant.endpoint,
            state=plant.vars["Mill3.channel_state"].to_string(),
            total=plant.vars["Mill3.Total"].to_string(),
            good=plant.vars["Mill3.Good"].to_string(),
        )
    )
    sinks = [RecordingSink(), RecordingSink()]
    sites = [discovered, hand]
    ids = [["channel_state", "parts_completed", "parts_good"], ["state", "total", "good"]]
    s = DAY.start_ns

    async def step(writes: list[tuple[str, int]], ts: int, waits: list[int]) -> None:
        for name, value in writes:
            await plant.write(name, value, ts)
        for sink, pids in zip(sinks, ids, strict=True):
            wanted = [pids[i] for i in waits]
            await sink.wait(
                lambda sink=sink, wanted=wanted: all(
                    any(x.ts == ts for x in sink.of("mill3", p)) for p in wanted
                ),
                what=f"step at {ts}: {wanted}",
            )

    connectors = [OpcUaConnector(x.devices[0].opcua, (x.devices[0],)) for x in sites]  # type: ignore[arg-type]
    async with running(connectors[0], sinks[0]), running(connectors[1], sinks[1]):
        for sink, pids in zip(sinks, ids, strict=True):
            await sink.wait(
                lambda sink=sink, pids=pids: all(sink.of("mill3", p) for p in pids), what="first"
            )
        await step([("Mill3.channel_state", 0)], s - H, [0])  # Active since before the day
        # 6 h: 20 parts, 1 bad; then Reset (idle) 2 h
        counts = [("JobM1.PartsCompleted", 20), ("JobM1.PartsGood", 19)]
        await step([*counts, ("Mill3.Total", 20), ("Mill3.Good", 19)], s + 6 * H, [1, 2])
        await step([("Mill3.channel_state", 2)], s + 6 * H + US, [0])
        # a new job from 8 h (its counters start at 0: a baseline), Active again
        await plant.new_job3("JobM2", s + 8 * H)
        await plant.activate3("JobM2", s + 8 * H)
        await sinks[0].wait(
            lambda: any(x.ts == s + 8 * H for x in sinks[0].of("mill3", "parts_good")),
            what="JobM2 followed",
        )
        await step([("Mill3.channel_state", 0)], s + 8 * H + US, [0])
        # 10 more parts, 3 bad, by 14 h; Interrupted (down) 14-16 h; Active to the end
        counts = [("JobM2.PartsCompleted", 10), ("JobM2.PartsGood", 7)]
        await step([*counts, ("Mill3.Total", 30), ("Mill3.Good", 26)], s + 14 * H, [1, 2])
        await step([("Mill3.channel_state", 1)], s + 14 * H + US, [0])
        await step([("Mill3.channel_state", 0)], s + 16 * H, [0])
    readers = []
    for sink, pids in zip(sinks, ids, strict=True):
        assert not [x for x in sink.samples if x.quality.name != "GOOD"], sink.samples
        rd = MemReader()
        for p in pids:
            got = {x.ts: x.value for x in sink.of("mill3", p) if x.ts < DAY.end_ns}
            rd.add("mill3", p, list(got), list(got.values()))
        beats = range(DAY.start_ns - H, DAY.end_ns + H, 10_000_000_000)
        rd.add("_gateway", "alive", beats, [1.0] * len(beats))
        readers.append(rd)
    a = compute_period(readers[0], discovered, DAY)
    b = compute_period(readers[1], hand, DAY)
    assert a.machines == b.machines
    assert a.kpis["oee"].value == b.kpis["oee"].value
    m = a.machines[0]
    assert (m["quantities"]["pq"], m["quantities"]["gq"]) == (30.0, 26.0)
    assert m["quantities"]["sq"] == 4.0  # PQ - GQ: no scrap counter, scrap still measured
    assert m["quality_ratio"] == pytest.approx(26 / 30)
    # producing 20 h of 24 (idle 6-8 h, down 14-16 h): availability 5/6; 30 x 1200 s = 10 h
    # ideal in 20 h run: effectiveness 1/2
    assert m["availability"] == pytest.approx(5 / 6)
    assert m["effectiveness"] == pytest.approx(1 / 2)
    assert m["oee"] == pytest.approx(5 / 6 * 1 / 2 * 26 / 30)


LATHE_BY_HAND = """\
devices:
  - id: lathe1
    name: lathe (by hand)
    opcua: {{endpoint: "{endpoint}", publishing_interval_ms: 50}}
    key_equipment: true
    points:
      - id: state
        role: state
        opcua: {{node_id: "{state}"}}
        state_map: {{"0": producing, "1": down, "2": idle}}
"""


async def test_cnc_channel_status_from_the_official_cnc_nodeset(plant: PlantServer) -> None:
    """OPC 40502: a channel (CncChannelType from the official 2017 NodeSet) below a machine's
    CncInterface is found by its type; ActStatus is the state, ActProgramStatus a measurement
    with its map in a comment; collected, the channel status gives the times of a hand
    mapping."""
    text = await _fragment(plant)
    lathe = next(d for d in yaml.safe_load(text)["devices"] if d["id"] == "lathe1")
    assert [(p["id"], p["role"]) for p in lathe["points"]] == [
        ("channel_status", "state"),
        ("program_status", "measurement"),
        ("cnc_operation_mode", "measurement"),
    ]
    status = lathe["points"][0]
    assert status["state_map"] == {"0": "producing", "1": "down", "2": "idle"}
    names = [seg.split(":", 1)[1] for seg in status["opcua"]["browse_path"].split("/")]
    assert names == ["Objects", "Lathe1", "CncInterface", "CncChannelList", "Channel1", "ActStatus"]
    assert (
        '# another state source; its map: {"0": idle, "1": producing, "2": idle, "3": down, '
        '"4": idle}' in text
    )
    assert "OPC 40502 CncChannelType.ActProgramStatus; 7.2.5 CncChannelProgramStatus" in text
    lathe["opcua"]["publishing_interval_ms"] = 50
    lathe["points"] = lathe["points"][:2]
    discovered = _site(yaml.safe_dump({"devices": [lathe]}))
    hand = _site(
        LATHE_BY_HAND.format(
            endpoint=plant.endpoint, state=plant.vars["Lathe1.ActStatus"].to_string()
        )
    )
    sinks = [RecordingSink(), RecordingSink()]
    ids = [["channel_status", "program_status"], ["state"]]
    s = DAY.start_ns
    connectors = [OpcUaConnector(x.devices[0].opcua, (x.devices[0],)) for x in (discovered, hand)]  # type: ignore[arg-type]
    async with running(connectors[0], sinks[0]), running(connectors[1], sinks[1]):
        for sink, pids in zip(sinks, ids, strict=True):
            await sink.wait(lambda sink=sink, pids=pids: all(sink.of("lathe1", p) for p in pids))
        # Active (program Running) 0-9 h, Interrupted (feed hold) 9-10 h, Active to 18 h, Reset
        for ts, act, prog in (
            (s - H, 0, 1),
            (s + 9 * H, 1, 3),
            (s + 10 * H, 0, 1),
            (s + 18 * H, 2, 0),
        ):
            await plant.write("Lathe1.ActStatus", act, ts, ua.VariantType.Int32)
            await plant.write("Lathe1.ActProgramStatus", prog, ts, ua.VariantType.Int32)
            for sink, pids in zip(sinks, ids, strict=True):
                await sink.wait(
                    lambda sink=sink, pids=pids, ts=ts: all(
                        any(x.ts == ts for x in sink.of("lathe1", p)) for p in pids
                    ),
                    what=f"step at {ts}",
                )
    program = {x.ts: x.value for x in sinks[0].of("lathe1", "program_status")}
    assert program[s + 9 * H] == 3.0  # Interrupted, as a number
    readers = []
    for sink, pid in zip(sinks, ("channel_status", "state"), strict=True):
        rd = MemReader()
        got = {x.ts: x.value for x in sink.of("lathe1", pid) if x.ts < DAY.end_ns}
        rd.add("lathe1", pid, list(got), list(got.values()))
        beats = range(DAY.start_ns - H, DAY.end_ns + H, 10_000_000_000)
        rd.add("_gateway", "alive", beats, [1.0] * len(beats))
        readers.append(rd)
    a = compute_period(readers[0], discovered, DAY)
    b = compute_period(readers[1], hand, DAY)
    assert a.machines[0]["times_s"] == b.machines[0]["times_s"]
    assert a.machines[0]["availability"] == pytest.approx(17 / 24)
