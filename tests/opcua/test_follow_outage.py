"""A follow point across an outage: the runs the same job completed while the gateway was not
connected are counted when the link is back (the connector keeps what each follow point last
read across its sessions); a job that changed meanwhile starts from a baseline."""

from __future__ import annotations

import pytest
from asyncua import ua

from connectors.opcua import OpcUaConnector
from tests.opcua.helpers import PlainServer, RecordingSink, device, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio


async def test_runs_completed_during_an_outage_are_counted_after_it() -> None:
    server = PlainServer(free_port())
    await server.start()
    s = server.server
    idx = server.nodes["Temp"].NamespaceIndex
    plant = await s.nodes.objects.get_child(f"{idx}:Plant")
    jobs = {}
    for name in ("Job1", "Job2"):
        job = await plant.add_object(ua.NodeId(name, idx), ua.QualifiedName(name, idx))
        runs = await job.add_variable(
            ua.NodeId(f"{name}.Runs", idx),
            ua.QualifiedName("RunsCompleted", idx),
            ua.Variant(2, ua.VariantType.UInt32),
        )
        jobs[name] = (job.nodeid, runs)
    pointer = await plant.add_variable(
        ua.NodeId("Plant.JobNodeId", idx),
        ua.QualifiedName("JobNodeId", idx),
        ua.Variant(jobs["Job1"][0], ua.VariantType.NodeId),
    )
    points = [
        {
            "id": "runs",
            "role": "count_total",
            "opcua": {
                "node_id": pointer.nodeid.to_string(),
                "follow": f"{idx}:RunsCompleted",
                "mode": "poll",
            },
            "interval_ms": 50,
        }
    ]
    site = site_of([device("m", server.endpoint, points)])
    dev = site.devices[0]
    connector = OpcUaConnector(dev.opcua, (dev,))  # type: ignore[arg-type]
    sink = RecordingSink()

    def total() -> float:
        got = [x for x in sink.of("m", "runs") if x.status == ""]
        return got[-1].value if got else -1.0

    async def set_runs(job: str, n: int) -> None:
        await jobs[job][1].write_value(ua.Variant(n, ua.VariantType.UInt32))

    try:
        async with running(connector, sink):
            await sink.wait(lambda: total() == 0.0, what="Job1's baseline")
            await set_runs("Job1", 3)
            await sink.wait(lambda: total() == 1.0, what="1 run")
        # the session is gone (as after a lost link); Job1 completes 3 runs meanwhile
        await set_runs("Job1", 6)
        async with running(connector, sink):
            await sink.wait(lambda: total() == 4.0, what="the 3 runs of the outage")
        # the pointer moves to Job2 during the next outage: Job2's runs so far are its baseline
        await pointer.write_value(ua.Variant(jobs["Job2"][0], ua.VariantType.NodeId))
        await set_runs("Job2", 9)
        before = len(sink.of("m", "runs"))
        async with running(connector, sink):
            await sink.wait(lambda: len(sink.of("m", "runs")) > before, what="Job2 read")
            assert total() == 4.0
            await set_runs("Job2", 10)
            await sink.wait(lambda: total() == 5.0, what="1 run of Job2")
    finally:
        await server.stop()
    assert connector.sessions == 3
