"""The OPC UA connector: one session per endpoint, serving every device on that endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from asyncua import Client, ua

from config.models import Device
from config.opcua import OpcUaConnection
from connectors.base import NAN, ConnectorError, Quality, Sample, Sink, now_ns
from connectors.opcua.convert import sample_of, status_name
from connectors.opcua.history import backfill, mark_historizing
from connectors.opcua.session import (
    Limits,
    chunks,
    close_client,
    configure,
    explain,
    make_client,
    read_limits,
    translate,
)
from connectors.opcua.subscription import PointRef, SampleSubscription, subscription_params

log = logging.getLogger("shopfloor.opcua")

INITIAL_VALUES_WAIT_S = 2.0


class OpcUaConnector:
    """Reads the points of ``devices`` (all on ``conn.endpoint``) until cancelled.

    Raises :class:`ConnectorError` when the link is lost, the session cannot be opened, or a
    subscription stays silent beyond ``watchdog_s`` while the session looks alive. The
    supervisor runs it again; the new run re-creates the session and subscriptions and fills
    the outage from the server's history (HistoryRead) where the nodes are historized.
    """

    def __init__(
        self,
        conn: OpcUaConnection,
        devices: Sequence[Device],
        pki_dir: Path | None = None,
    ) -> None:
        self.conn = conn
        self.name = f"opcua:{conn.endpoint}"
        self.devices = tuple(d.id for d in devices)
        self.pki_dir = pki_dir
        self.refs = [PointRef(d.id, p) for d in devices for p in d.points]
        self._publishing = {
            d.id: float(d.opcua.publishing_interval_ms if d.opcua else 500) for d in devices
        }
        self.limits = Limits()
        self.subscriptions: list[SampleSubscription] = []
        self.sessions = 0
        self.backfilled = 0
        self._first_seen = asyncio.Event()

    # ----------------------------------------------------------------- run
    async def run(self, sink: Sink) -> None:
        client = make_client(self.conn)
        connected = False
        try:
            try:
                await configure(client, self.conn, self.pki_dir)
                await client.connect()
            except ConnectorError:
                raise
            except (TimeoutError, Exception) as exc:
                pinned = self.conn.server_certificate is not None
                raise ConnectorError(explain(exc, self.conn.endpoint, pinned)) from exc
            connected = True
            self.sessions += 1
            for d in self.devices:
                sink.link(d, True)
            await self._session(client, sink)
        except ConnectorError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ConnectorError(explain(exc, self.conn.endpoint)) from exc
        finally:
            self.subscriptions = []
            if connected:
                for d in self.devices:
                    sink.link(d, False)
            await close_client(client)

    async def _session(self, client: Client, sink: Sink) -> None:
        self.limits = await read_limits(client)
        log.info("%s: operation limits %s", self.conn.endpoint, self.limits)
        await self._resolve(client, sink)
        since = {r.key: r.last_ts for r in self.refs if r.last_ts is not None}
        for r in self.refs:
            r.first_ts = None
        backfilling = self.conn.history_backfill and bool(since)
        if backfilling:
            await mark_historizing(client, self.refs, self.limits.max_nodes_per_read)
        subscribed = [
            r
            for r in self.refs
            if r.node_id is not None and r.point.opcua.mode == "subscribe"  # type: ignore[union-attr]
        ]
        polled = [
            r
            for r in self.refs
            if r.node_id is not None and r.point.opcua.mode == "poll"  # type: ignore[union-attr]
        ]
        await self._eu_ranges(client, subscribed)
        await self._subscribe(client, sink, subscribed)
        groups = self._poll_groups(polled)
        for refs in groups.values():
            await self._poll(client, sink, refs)
        if backfilling:
            await self._wait_initial(subscribed)
            n = await backfill(
                client, self.refs, since, sink, self.limits.max_nodes_per_history_read
            )
            self.backfilled += n
            log.info("%s: backfilled %d samples of the outage from history", self.name, n)
        await self._loop(client, sink, groups)

    async def _loop(self, client: Client, sink: Sink, groups: dict[float, list[PointRef]]) -> None:
        watchdog = self.conn.watchdog_s
        tick = min(0.2, watchdog / 5.0)
        due = {ms: time.monotonic() + ms / 1000.0 for ms in groups}
        while True:
            wake = min([tick + time.monotonic(), *due.values()])
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            await client.check_connection()
            now = time.monotonic()
            for sub in self.subscriptions:
                if sub.lost is not None:
                    raise ConnectorError(f"{self.conn.endpoint}: subscription status {sub.lost}")
                silent = now - sub.last_alive
                if silent > watchdog:
                    raise ConnectorError(
                        f"{self.conn.endpoint}: subscription {sub.subscription_id} silent for "
                        f"{silent:.1f}s (watchdog {watchdog:g}s) while the session is alive"
                    )
            for ms, at in due.items():
                if now >= at:
                    await self._poll(client, sink, groups[ms])
                    due[ms] = max(at + ms / 1000.0, time.monotonic())

    # ----------------------------------------------------------------- resolution
    async def _resolve(self, client: Client, sink: Sink) -> None:
        by_path: list[PointRef] = []
        now = now_ns()
        for ref in self.refs:
            # resolved again at every session: a restarted server may number its nodes anew
            ref.node_id = None
            ref.status = ""
            ref.eu_range = None
            addr = ref.point.opcua
            assert addr is not None
            if addr.node_id is not None:
                try:
                    ref.node_id = ua.NodeId.from_string(addr.node_id)
                except (ValueError, ua.UaStringParsingError):
                    self._bad(sink, ref, "BadNodeIdInvalid", now)
            else:
                by_path.append(ref)
        if not by_path:
            return
        paths = [r.point.opcua.browse_path or "" for r in by_path]  # type: ignore[union-attr]
        results = await translate(client, paths, self.limits.max_nodes_per_translate)
        for ref, res in zip(by_path, results, strict=True):
            if isinstance(res, ua.NodeId):
                ref.node_id = res
            else:
                self._bad(sink, ref, status_name(res.value) or "BadNoMatch", now)

    async def _eu_ranges(self, client: Client, refs: Sequence[PointRef]) -> None:
        pct = [
            r
            for r in refs
            if r.point.deadband is not None
            and r.point.deadband.kind == "percent"
            and r.eu_range is None
        ]
        if not pct:
            return
        paths: list[ua.BrowsePath] = []
        for r in pct:
            bp = ua.BrowsePath()
            bp.StartingNode = r.node_id
            bp.RelativePath = ua.RelativePath.from_string("/0:EURange")
            paths.append(bp)
        found: list[tuple[PointRef, ua.NodeId]] = []
        for part in chunks(list(zip(pct, paths, strict=True)), self.limits.max_nodes_per_translate):
            results = await client.uaclient.translate_browsepaths_to_nodeids([p for _, p in part])
            for (ref, _), res in zip(part, results, strict=True):
                if res.StatusCode.is_good() and res.Targets:
                    t = res.Targets[0].TargetId
                    found.append((ref, ua.NodeId(t.Identifier, t.NamespaceIndex, t.NodeIdType)))
        for part2 in chunks(found, self.limits.max_nodes_per_read):
            dvs = await client.uaclient.read_attributes(
                [n for _, n in part2], ua.AttributeIds.Value
            )
            for (ref, _), dv in zip(part2, dvs, strict=True):
                rng = dv.Value.Value if dv.Value is not None else None
                if isinstance(rng, ua.Range) and rng.High > rng.Low:
                    ref.eu_range = float(rng.High - rng.Low)

    # ----------------------------------------------------------------- subscriptions
    async def _subscribe(self, client: Client, sink: Sink, refs: Sequence[PointRef]) -> None:
        by_interval: dict[float, list[PointRef]] = {}
        for r in refs:
            by_interval.setdefault(self._publishing[r.device], []).append(r)
        now = now_ns()
        for ms, group in sorted(by_interval.items()):
            params = subscription_params(ms, self.conn.watchdog_s)
            sub = SampleSubscription(client.uaclient, params, sink, self._on_sample)
            await sub.init()
            self.subscriptions.append(sub)
            failures = await sub.add_points(group, ms, self.limits.max_monitored_items_per_call)
            for ref, code in failures:
                self._bad(sink, ref, status_name(code.value) or "Bad", now)

    def _on_sample(self, ref: PointRef, s: Sample) -> bool:
        first = ref.first_ts is None
        if first:
            ref.first_ts = s.ts
            self._first_seen.set()
        if first and ref.last_ts is not None and s.ts <= ref.last_ts:
            return False  # the value we already hold, re-sent as the initial value
        if ref.last_ts is None or s.ts > ref.last_ts:
            ref.last_ts = s.ts
        return True

    async def _wait_initial(self, refs: Sequence[PointRef]) -> None:
        """Until every historized subscribed point has its initial value (which bounds the
        backfill window), at most INITIAL_VALUES_WAIT_S."""
        deadline = time.monotonic() + INITIAL_VALUES_WAIT_S
        waiting = [r for r in refs if r.historizing]
        while any(r.first_ts is None for r in waiting):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._first_seen.clear()
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for returns the result and
            # drops a cancellation that arrives just as the event fires (the connector then
            # never stops); asyncio.timeout lets the CancelledError through.
            try:
                async with asyncio.timeout(remaining):
                    await self._first_seen.wait()
            except TimeoutError:
                return

    # ----------------------------------------------------------------- polling
    def _poll_groups(self, refs: Sequence[PointRef]) -> dict[float, list[PointRef]]:
        groups: dict[float, list[PointRef]] = {}
        for r in refs:
            ms = float(r.point.interval_ms or self._publishing[r.device])
            groups.setdefault(ms, []).append(r)
        return groups

    async def _poll(self, client: Client, sink: Sink, refs: Sequence[PointRef]) -> None:
        for part in chunks(refs, self.limits.max_nodes_per_read):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            for r in part:
                rv = ua.ReadValueId()
                rv.NodeId = r.node_id
                rv.AttributeId = ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            results = await client.uaclient.read(params)
            now = now_ns()
            out: list[Sample] = []
            for r, dv in zip(part, results, strict=True):
                s = sample_of(r.device, r.point.id, dv, now, r.scale, r.offset)
                if s.quality is Quality.BAD and r.status != s.status:
                    sink.error(r.device, s.status)
                r.status = s.status if s.quality is Quality.BAD else ""
                if self._on_sample(r, s):
                    out.append(s)
            if out:
                sink.put_many(out)

    def _bad(self, sink: Sink, ref: PointRef, status: str, now: int) -> None:
        log.warning("%s/%s: %s", ref.device, ref.point.id, status)
        ref.status = status
        sink.put(Sample(ref.device, ref.point.id, now, NAN, Quality.BAD, status))
        sink.error(ref.device, status)
