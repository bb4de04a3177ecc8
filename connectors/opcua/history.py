"""HistoryRead backfill: after a reconnect, fill the outage from the server's history.

For every historized node (attribute Historizing), ReadRawModifiedDetails from just after the
last sample seen to the first sample of the new session (or now), following continuation
points, batched by the server's MaxNodesPerHistoryReadData.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from asyncua import Client, ua

from connectors.base import Sample, Sink, now_ns
from connectors.opcua.convert import sample_of
from connectors.opcua.session import chunks
from connectors.opcua.subscription import PointRef

log = logging.getLogger("shopfloor.opcua.history")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_ROUNDS = 1000


def _dt(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


async def mark_historizing(client: Client, refs: Sequence[PointRef], limit: int) -> None:
    """Read the Historizing attribute of every resolved node (batched by MaxNodesPerRead)."""
    resolved = [r for r in refs if r.node_id is not None]
    for part in chunks(resolved, limit):
        results = await client.uaclient.read_attributes(
            [r.node_id for r in part], ua.AttributeIds.Historizing
        )
        for ref, dv in zip(part, results, strict=True):
            value = dv.Value.Value if dv.Value is not None else None
            ref.historizing = bool(dv.StatusCode is None or dv.StatusCode.is_good()) and (
                value is True
            )


async def backfill(
    client: Client,
    refs: Sequence[PointRef],
    since: dict[tuple[str, str], int],
    sink: Sink,
    limit: int,
) -> int:
    """Samples of the outage put into ``sink``; returns how many."""
    todo = [r for r in refs if r.historizing and r.node_id is not None and r.key in since]
    total = 0
    now = now_ns()
    for part in chunks(todo, limit):
        total += await _read_part(client, part, since, sink, now)
    return total


async def _read_part(
    client: Client,
    part: Sequence[PointRef],
    since: dict[tuple[str, str], int],
    sink: Sink,
    now: int,
) -> int:
    total = 0
    # nodes of one request share StartTime/EndTime: group by the outage window
    windows: dict[tuple[int, int], list[PointRef]] = {}
    for ref in part:
        start = since[ref.key] + 1000  # strictly after the last sample seen (µs resolution)
        end = ref.first_ts - 1000 if ref.first_ts is not None else now
        if end > start:
            windows.setdefault((start, end), []).append(ref)
    for (start, end), group in windows.items():
        details = ua.ReadRawModifiedDetails()
        details.IsReadModified = False
        details.StartTime = _dt(start)
        details.EndTime = _dt(end)
        details.NumValuesPerNode = 1000
        details.ReturnBounds = False
        cps: dict[int, bytes | None] = dict.fromkeys(range(len(group)))
        for _ in range(MAX_ROUNDS):
            if not cps:
                break
            params = ua.HistoryReadParameters()
            params.HistoryReadDetails = details
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.ReleaseContinuationPoints = False
            order = list(cps)
            for i in order:
                v = ua.HistoryReadValueId()
                v.NodeId = group[i].node_id
                v.IndexRange = ""
                v.ContinuationPoint = cps[i]
                params.NodesToRead.append(v)
            results = await client.uaclient.history_read(params)
            nxt: dict[int, bytes | None] = {}
            for i, res in zip(order, results, strict=True):
                ref = group[i]
                if not res.StatusCode.is_good():
                    log.info(
                        "%s/%s: no history (%s)", ref.device, ref.point.id, res.StatusCode.name
                    )
                    continue
                values = res.HistoryData.DataValues if res.HistoryData is not None else []
                out: list[Sample] = []
                for dv in values or ():
                    s = sample_of(ref.device, ref.point.id, dv, now_ns(), ref.scale, ref.offset)
                    if start <= s.ts <= end:
                        out.append(s)
                if out:
                    sink.put_many(out)
                    total += len(out)
                if res.ContinuationPoint:
                    nxt[i] = res.ContinuationPoint
            cps = nxt
    return total
