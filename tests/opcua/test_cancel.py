"""A stop that arrives just as the awaited event fires must still stop the connector.

Python 3.11's ``asyncio.wait_for`` returns the result and drops a cancellation delivered in
the same loop step as the awaited thing completes; the connector then never stopped. The
sequence is made exact here: the event is set and the task cancelled in one synchronous step,
so the inner waiter is done before the cancelled task resumes.
"""

from __future__ import annotations

import asyncio

import pytest

from connectors.opcua import OpcUaConnector, build
from tests.opcua.helpers import device, site_of


def _connector() -> OpcUaConnector:
    points = [
        {"id": "a", "datatype": "float64", "opcua": {"node_id": "ns=2;s=P.A"}},
        {"id": "b", "datatype": "float64", "opcua": {"node_id": "ns=2;s=P.B"}},
    ]
    # never connected: only the wait for initial values is exercised
    (connector,) = build(site_of([device("m1", "opc.tcp://127.0.0.1:4", points)]))
    assert isinstance(connector, OpcUaConnector)
    return connector


async def _parked(task: asyncio.Task[None]) -> None:
    """Until ``task`` waits on the event (a few loop steps)."""
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()


async def test_cancel_as_the_first_value_arrives_stops_the_wait() -> None:
    connector = _connector()
    refs = connector.refs
    for r in refs:
        r.historizing = True
    task = asyncio.create_task(connector._wait_initial(refs))
    await _parked(task)
    # the last initial value arrives and the stop comes in the same step
    for r in refs:
        r.first_ts = 1
    connector._first_seen.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2.0):
            await task
    assert task.cancelled()


async def test_cancel_while_values_still_missing_stops_the_wait() -> None:
    connector = _connector()
    refs = connector.refs
    for r in refs:
        r.historizing = True
    task = asyncio.create_task(connector._wait_initial(refs))
    await _parked(task)
    refs[0].first_ts = 1  # one value in, one still missing: the wait would go on
    connector._first_seen.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2.0):
            await task


async def test_the_wait_ends_when_every_initial_value_is_in() -> None:
    connector = _connector()
    refs = connector.refs
    for r in refs:
        r.historizing = True
    task = asyncio.create_task(connector._wait_initial(refs))
    await _parked(task)
    for r in refs:
        r.first_ts = 1
    connector._first_seen.set()
    async with asyncio.timeout(1.0):
        await task
    assert task.done()
    assert not task.cancelled()
