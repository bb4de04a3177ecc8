"""HistoryRead backfill: fill an outage from the server's history, resuming from the store.

For every historized node (attribute Historizing) whose point has a last known sample when
the session begins (``PointRef.since``, from ``last_ts``: read from the store at start, then
kept while running),
ReadRawModifiedDetails from just after that sample to just before the first sample of the new
session (or now), following continuation points (a server that stops at NumValuesPerNode
without one is read on from its last value), batched by the server's
MaxNodesPerHistoryReadData. A point whose history was read to the end is *restored*: the
outage markers written for it inside the window are healed with a good sample at exactly the
marker's time, holding the value in force then (config.markers: a good sample at a marker's
time wins over it). A point the server cannot give back keeps its markers (an outage).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from asyncua import Client, ua

from connectors.base import Quality, Sample, Sink
from connectors.opcua.session import chunks
from connectors.opcua.subscription import PointRef

log = logging.getLogger("shopfloor.opcua.history")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_ROUNDS = 10_000
VALUES_PER_NODE = 1000
_US = 1000


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


def heal(ref: PointRef, values: Sequence[Sample], end: int) -> list[Sample]:
    """Good samples at the times of ``ref``'s outage markers up to ``end`` (the history read
    covered them), each holding the value in force then: the session's first value when it is
    at or before the marker (the history window ends just before it, so it is the newest),
    else the last history value at or before the marker, else the last value known before the
    outage. Markers at the time of a history value need none. Removes the healed markers."""
    out: list[Sample] = []
    keep: list[int] = []
    good = [s for s in values if s.quality is Quality.GOOD]
    at = {s.ts for s in values}
    for m in ref.markers:
        if m > end and (ref.first is None or ref.first.ts > m):
            keep.append(m)
            continue
        if m in at:
            continue
        before = [s for s in good if s.ts <= m]
        if ref.first is not None and ref.first.ts <= m:
            value: float | None = ref.first.value
        elif before:
            value = before[-1].value
        else:
            # the value known when the session began (last_value may already hold the
            # session's first value, which comes after the marker)
            value = ref.since_value
        if value is None:
            keep.append(m)
            continue
        out.append(Sample(ref.device, ref.point_id, m, value))
    ref.markers = keep
    return out


async def backfill(
    client: Client, refs: Sequence[PointRef], sink: Sink, limit: int, now: int
) -> tuple[int, set[tuple[str, str]]]:
    """Put the samples of the outage into ``sink`` (and the healing samples of its markers);
    returns how many history values, and the keys of the points restored."""
    todo = [r for r in refs if r.historizing and r.node_id is not None and r.since is not None]
    total = 0
    restored: set[tuple[str, str]] = set()
    for part in chunks(todo, limit):
        n, ok = await _read_part(client, part, sink, now)
        total += n
        restored |= ok
    return total, restored


def _window(ref: PointRef, now: int) -> tuple[int, int]:
    assert ref.since is not None
    start = ref.since + _US  # strictly after the last sample known (µs resolution)
    end = ref.first_ts - _US if ref.first_ts is not None else now
    return start, end


async def _read_part(
    client: Client, part: Sequence[PointRef], sink: Sink, now: int
) -> tuple[int, set[tuple[str, str]]]:
    total = 0
    restored: set[tuple[str, str]] = set()
    # nodes of one request share StartTime/EndTime: group by the outage window
    windows: dict[tuple[int, int], list[PointRef]] = {}
    for ref in part:
        start, end = _window(ref, now)
        if end < start:
            # the value the server holds now is no newer than the last one known: nothing
            # changed during the outage
            out = heal(ref, (), start)
            if out:
                sink.put_many(out)
            restored.add(ref.key)
            continue
        windows.setdefault((start, end), []).append(ref)
    for (start, end), group in windows.items():
        got = await _read_window(client, group, start, end)
        for i, values in got.items():
            ref = group[i]
            if values is None:
                continue
            out = [s for s in values if start <= s.ts <= end]
            healing = heal(ref, out, end)
            goods = [s for s in out if s.quality is Quality.GOOD]
            if goods:
                newest = max(goods, key=lambda s: s.ts)
                if ref.last_ts is None or newest.ts > ref.last_ts:
                    ref.last_ts, ref.last_value = newest.ts, newest.value
            if out or healing:
                sink.put_many(out + healing)
            total += len(out)
            restored.add(ref.key)
    return total, restored


async def _read_window(
    client: Client, group: Sequence[PointRef], start: int, end: int
) -> dict[int, list[Sample] | None]:
    """The history of every node of ``group`` in [start, end] (None: the server gave none)."""
    got: dict[int, list[Sample] | None] = {i: [] for i in range(len(group))}
    # per node: (continuation point, start of the next read)
    todo: dict[int, tuple[bytes | None, int]] = dict.fromkeys(range(len(group)), (None, start))
    for _ in range(MAX_ROUNDS):
        if not todo:
            break
        # nodes of one request share the details: one request per distinct read start
        by_start: dict[int, list[int]] = {}
        for i, (_, at) in todo.items():
            by_start.setdefault(at, []).append(i)
        nxt: dict[int, tuple[bytes | None, int]] = {}
        for at, order in by_start.items():
            details = ua.ReadRawModifiedDetails()
            details.IsReadModified = False
            details.StartTime = _dt(at)
            details.EndTime = _dt(end)
            details.NumValuesPerNode = VALUES_PER_NODE
            details.ReturnBounds = False
            params = ua.HistoryReadParameters()
            params.HistoryReadDetails = details
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.ReleaseContinuationPoints = False
            for i in order:
                v = ua.HistoryReadValueId()
                v.NodeId = group[i].node_id
                v.IndexRange = ""
                v.ContinuationPoint = todo[i][0]
                params.NodesToRead.append(v)
            results = await client.uaclient.history_read(params)
            for i, res in zip(order, results, strict=True):
                ref = group[i]
                if not res.StatusCode.is_good():
                    log.info(
                        "%s/%s: no history (%s)", ref.device, ref.point_id, res.StatusCode.name
                    )
                    got[i] = None
                    continue
                values = res.HistoryData.DataValues if res.HistoryData is not None else []
                samples = [ref.sample(dv, end) for dv in values or ()]
                acc = got[i]
                assert acc is not None
                acc.extend(samples)
                if res.ContinuationPoint:
                    nxt[i] = (res.ContinuationPoint, at)
                elif len(samples) >= VALUES_PER_NODE:
                    # a full page without a continuation point: read on after its last value
                    nxt[i] = (None, max(s.ts for s in samples) + _US)
        todo = nxt
    return got
