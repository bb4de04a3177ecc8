"""Points that follow a pointer: the addressed variable holds a NodeId (MachineTool's
``Production/ActiveProgram/JobNodeId``, OPC 40501-1 8.4.5: "the NodeId of the ProductionJobType
instance this program is used in"), the point is the variable at a relative browse path from
that node (``follow: 3:RunsCompleted``). The objects pointed to are transient (a job object is
created and removed by the machine), so the target is looked up again whenever the pointer
changes, and when the target is gone (``BadNodeIdUnknown``).

Such points are polled: each poll reads the pointers, resolves the new targets
(TranslateBrowsePathsToNodeIds, batched), then reads the targets (batched).

A counter role sums over the objects followed (:func:`count_step`): what each target counts
while it is the one pointed to. The first reading of a new target is its baseline (the runs a
resumed job completed before are not counted again); a reading below the previous one of the
same target counts from zero (the object's own counter restarted). At most the runs completed
between a pointer change and the next poll are missed. Any other role stores the target's value.
After a lost link the same object's runs of the outage count at its first reading (the state is
kept across the connector's sessions); after a restart of the collector the first reading is a
baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import Client, ua

from config.models import COUNTER_ROLES
from connectors.base import NAN, Quality, Sample
from connectors.opcua.convert import ns_of, quality_of, sample_of, status_name
from connectors.opcua.session import chunks
from connectors.opcua.subscription import PointRef

NO_TARGET = "no_target"
"""Status: the pointer is the null NodeId or not a NodeId (nothing to follow now)."""


@dataclass(slots=True)
class Following:
    """Where a follow point stands (kept across the connector's sessions, see
    :func:`new_session`; lost when the collector restarts)."""

    pointer: ua.NodeId | None = None  # the NodeId last read from the pointer variable
    target: ua.NodeId | None = None  # the followed variable (None: to resolve)
    prev: float | None = None  # the target's last raw reading (None: the next is a baseline)
    total: float | None = None  # a counter's running sum (stored value)


def new_session(states: dict[tuple[str, str], Following]) -> None:
    """A new session of the same connector: each target is looked up again (the server may
    have restarted and renumbered), the pointer and the last reading are kept, so the runs the
    same object completed while the link was down count at its first reading (a changed
    pointer makes that reading a baseline, as always)."""
    for f in states.values():
        f.target = None


def count_step(f: Following, raw: float, scale: float = 1.0) -> float:
    """The counter's new total after the target read ``raw`` (see the module notes)."""
    if f.prev is None:
        delta = 0.0
    elif raw >= f.prev:
        delta = raw - f.prev
    else:
        delta = raw  # the object's counter restarted from zero
    f.prev = raw
    f.total = (f.total or 0.0) + delta * scale
    return f.total


def _node(value: object) -> ua.NodeId | None:
    if isinstance(value, ua.NodeId) and not value.is_null():
        return ua.NodeId(value.Identifier, value.NamespaceIndex, value.NodeIdType)
    return None


async def _read(client: Client, nodes: Sequence[ua.NodeId], limit: int) -> list[ua.DataValue]:
    out: list[ua.DataValue] = []
    for part in chunks(list(nodes), limit):
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        for n in part:
            rv = ua.ReadValueId()
            rv.NodeId = n
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        out.extend(await client.uaclient.read(params))
    return out


def _bad(ref: PointRef, ts: int, status: str) -> Sample:
    return Sample(ref.device, ref.point_id, ts, NAN, Quality.BAD, status)


async def poll_followed(
    client: Client,
    refs: Sequence[PointRef],
    states: dict[tuple[str, str], Following],
    limits: tuple[int, int],
    now: int,
) -> list[tuple[PointRef, Sample]]:
    """One poll of follow points: a sample per point (``limits``: MaxNodesPerRead,
    MaxNodesPerTranslateBrowsePathsToNodeIds)."""
    max_read, max_translate = limits
    out: list[tuple[PointRef, Sample]] = []
    pointers = await _read(client, [r.node_id for r in refs if r.node_id is not None], max_read)
    live: list[tuple[PointRef, Following]] = []
    for ref, dv in zip(refs, pointers, strict=True):
        f = states.setdefault(ref.key, Following(total=ref.last_value))
        code = dv.StatusCode.value if dv.StatusCode is not None else 0
        ts = ns_of(dv.SourceTimestamp) or ns_of(dv.ServerTimestamp) or now
        if quality_of(code) is Quality.BAD:
            f.pointer = f.target = f.prev = None
            out.append((ref, _bad(ref, ts, status_name(code) or "Bad")))
            continue
        node = _node(dv.Value.Value if dv.Value is not None else None)
        if node is None:
            f.pointer = f.target = f.prev = None
            if ref.point.role in COUNTER_ROLES and f.total is not None:
                # nothing pointed to (no active job): nothing is being counted
                out.append((ref, Sample(ref.device, ref.point_id, ts, f.total, Quality.GOOD, "")))
            else:
                out.append((ref, _bad(ref, ts, NO_TARGET)))
            continue
        if node != f.pointer:
            f.pointer, f.target, f.prev = node, None, None
        live.append((ref, f))
    todo = [(ref, f) for ref, f in live if f.target is None]
    for part in chunks(todo, max_translate):
        paths = []
        for ref, f in part:
            bp = ua.BrowsePath()
            bp.StartingNode = f.pointer
            bp.RelativePath = ua.RelativePath.from_string("/" + (ref.point.opcua.follow or ""))  # type: ignore[union-attr]
            paths.append(bp)
        results = await client.uaclient.translate_browsepaths_to_nodeids(paths)
        for (ref, f), res in zip(part, results, strict=True):
            if res.StatusCode.is_good() and res.Targets:
                t = res.Targets[0].TargetId
                f.target = ua.NodeId(t.Identifier, t.NamespaceIndex, t.NodeIdType)
            else:
                out.append((ref, _bad(ref, now, status_name(res.StatusCode.value) or "BadNoMatch")))
    ready = [(ref, f) for ref, f in live if f.target is not None]
    values = await _read(client, [f.target for _, f in ready if f.target is not None], max_read)
    for (ref, f), dv in zip(ready, values, strict=True):
        counter = ref.point.role in COUNTER_ROLES
        if not counter:
            out.append((ref, ref.sample(dv, now)))
            continue
        s = sample_of(ref.device, ref.point_id, dv, now)
        if s.quality is Quality.BAD:
            if s.status == "BadNodeIdUnknown":  # the object is gone: look it up again
                f.target = f.prev = None
            out.append((ref, s))
            continue
        total = count_step(f, s.value, ref.scale)
        out.append((ref, Sample(ref.device, ref.point_id, s.ts, total, s.quality, s.status)))
    return out
