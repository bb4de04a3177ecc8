"""The OPC UA connector: one session per endpoint, serving every device on that endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from asyncua import Client, ua

from config.markers import GATEWAY_DOWN, is_marker
from config.models import Device
from config.opcua import OpcUaConnection
from connectors.base import NAN, ConnectorError, Quality, Sample, Sink, now_ns
from connectors.opcua.convert import status_name
from connectors.opcua.fastpublish import install as install_fast_publish
from connectors.opcua.follow import Following, new_session, poll_followed
from connectors.opcua.history import backfill, mark_historizing
from connectors.opcua.select import UNDECODED, load_structures
from connectors.opcua.session import (
    AuthenticationError,
    Limits,
    chunks,
    close_client,
    configure,
    explain,
    is_auth_refusal,
    make_client,
    read_limits,
    socket_closed,
    translate,
)
from connectors.opcua.subscription import PointRef, SampleSubscription, subscription_params

log = logging.getLogger("shopfloor.opcua")

INITIAL_VALUES_WAIT_S = 2.0


class Stored(Protocol):
    """Where a point's stored series ends (edge.store.base.Newest)."""

    @property
    def last(self) -> Sample: ...

    @property
    def good(self) -> Sample | None: ...


class OpcUaConnector:
    """Reads the points of ``devices`` (all on ``conn.endpoint``) until cancelled.

    Raises :class:`ConnectorError` when the link is lost, the session cannot be opened, or a
    subscription stays silent beyond ``watchdog_s`` while the session looks alive. The
    supervisor runs it again; the new run re-creates the session and subscriptions and fills
    the outage from the server's history (HistoryRead) where the nodes are historized.

    Resuming from the store (:meth:`resume`, called by the collector before the first run):
    every point restarts from its last stored sample; the ``gateway_down`` marker of a point
    is written only when the server cannot give the gap back (no history, history refused,
    or the server unreachable at the first connect: then a later backfill heals it). Outage
    markers (the supervisor's ``link_lost`` via :meth:`marked`, ``gateway_down``) stay
    outstanding until a good sample supersedes them; a backfill that restores the gap heals
    them (a good sample at the marker's time); without history, the value the server re-sends
    on (re)connect is stored at the gateway's receive time (it re-establishes the state).
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
        # lean refs: the point models stay in the devices' columns (PointRef.of)
        self.refs = [PointRef.of(d.id, d.points, i) for d in devices for i in range(len(d.points))]
        self._publishing = {
            d.id: float(d.opcua.publishing_interval_ms if d.opcua else 500) for d in devices
        }
        self.limits = Limits()
        self.subscriptions: list[SampleSubscription] = []
        self.sessions = 0
        self.backfilled = 0
        self.reestablished = 0  # values re-sent after an outage, stored at receive time
        self.time_ns: Callable[[], int] = now_ns  # the gateway's clock (receive times)
        self._backfilling = False
        self._first_seen = asyncio.Event()
        self._following: dict[tuple[str, str], Following] = {}  # follow points (all sessions)

    # ----------------------------------------------------------------- resume / markers
    def resume(
        self,
        stored: Mapping[tuple[str, str], Stored],
        last_alive: int | None,
        time_ns: Callable[[], int] = now_ns,
    ) -> set[tuple[str, str]]:
        """Start from what the store holds: each point resumes from its last stored good
        sample; an outage marker stored last stays outstanding. Returns the points whose
        ``gateway_down`` marker (at ``last_alive + 1``) this connector takes over: those with
        history backfill on and a good last sample. It writes the marker itself unless the
        server's history restores the gap."""
        self.time_ns = time_ns
        taken: set[tuple[str, str]] = set()
        for r in self.refs:
            got = stored.get(r.key)
            if got is None:
                continue
            if got.good is not None:
                r.last_ts, r.last_value = got.good.ts, got.good.value
            last = got.last
            if last.quality is Quality.BAD and is_marker(last.status):
                r.markers = [last.ts]
            elif (
                last.quality is Quality.GOOD
                and last_alive is not None
                and self.conn.history_backfill
            ):
                r.pending_down = max(last_alive, last.ts) + 1
                taken.add(r.key)
        return taken

    def marked(self, samples: Iterable[Sample]) -> None:
        """Outage markers written for this connector's points (the supervisor's link_lost)."""
        by_key = {r.key: r for r in self.refs}
        for s in samples:
            r = by_key.get((s.device, s.point))
            if r is not None:
                r.markers = [*r.markers, s.ts]

    def _write_down(self, sink: Sink, refs: Iterable[PointRef]) -> None:
        """The pending gateway_down markers of ``refs`` (now outstanding)."""
        out: list[Sample] = []
        for r in refs:
            if r.pending_down is not None:
                out.append(
                    Sample(r.device, r.point_id, r.pending_down, NAN, Quality.BAD, GATEWAY_DOWN)
                )
                r.markers = [*r.markers, r.pending_down]
                r.pending_down = None
        if out:
            sink.put_many(out)

    def _backfills(self, ref: PointRef) -> bool:
        return self._backfilling and ref.historizing and ref.since is not None

    # ----------------------------------------------------------------- run
    async def run(self, sink: Sink) -> None:
        client = make_client(self.conn)
        connected = False
        try:
            try:
                await configure(client, self.conn, self.pki_dir)
                await client.connect()
            except ConnectorError:
                self._write_down(sink, self.refs)
                raise
            except (TimeoutError, Exception) as exc:
                # unreachable at the first connect: the gap is an outage until a backfill
                self._write_down(sink, self.refs)
                pinned = self.conn.server_certificate is not None
                text = explain(exc, self.conn.endpoint, pinned)
                if is_auth_refusal(exc):
                    raise AuthenticationError(text) from exc
                raise ConnectorError(text) from exc
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
            self._backfilling = False
            self.subscriptions = []
            if connected:
                for d in self.devices:
                    sink.link(d, False)
            await close_client(client)

    async def _session(self, client: Client, sink: Sink) -> None:
        # publish responses decoded column-wise (before the first subscription starts asyncua's
        # publish loop); a client without what that relies on keeps asyncua's decoder
        if not install_fast_publish(client.uaclient):
            log.info("%s: asyncua's own publish decoding (no columnar path)", self.name)
        self.limits = await read_limits(client)
        log.info("%s: operation limits %s", self.conn.endpoint, self.limits)
        await self._resolve(client, sink)
        if any(r.select is not None and r.node_id is not None for r in self.refs):
            failed = await load_structures(client)
            if failed is not None:
                log.warning(
                    "%s: the server's structure definitions could not be loaded (%s): points "
                    "selecting a field store %s samples",
                    self.conn.endpoint,
                    failed,
                    UNDECODED,
                )
        new_session(self._following)
        for r in self.refs:
            r.since = r.last_ts
            r.since_value = r.last_value
            r.first_ts = None
            r.first = None
            r.resent = None
            r.historizing = False
        backfilling = self.conn.history_backfill and any(r.last_ts is not None for r in self.refs)
        if backfilling:
            # a follow point's node is the pointer, not the value: no history of it
            plain = [r for r in self.refs if not r.follows]
            await mark_historizing(client, plain, self.limits.max_nodes_per_read)
        self._backfilling = backfilling
        # the points the server cannot give back: their gateway_down marker now (before their
        # re-sent value, which then re-establishes them)
        self._write_down(sink, [r for r in self.refs if not self._backfills(r)])
        subscribed = [r for r in self.refs if r.node_id is not None and not r.polled]
        polled = [r for r in self.refs if r.node_id is not None and r.polled]
        await self._eu_ranges(client, subscribed)
        await self._subscribe(client, sink, subscribed)
        groups = self._poll_groups(polled)
        for refs in groups.values():
            await self._poll(client, sink, refs)
        if backfilling:
            await self._wait_initial(subscribed)
            n, restored = await backfill(
                client, self.refs, sink, self.limits.max_nodes_per_history_read, now_ns()
            )
            self._backfilling = False
            self.backfilled += n
            log.info("%s: backfilled %d samples of the outage from history", self.name, n)
            self._after_backfill(sink, restored)
        # a monitored item's node id is not read again in this session (the next one resolves
        # it again): not kept per item (~220 bytes each)
        for r in subscribed:
            r.node_id = None
        await self._loop(client, sink, groups)

    def _after_backfill(self, sink: Sink, restored: set[tuple[str, str]]) -> None:
        """Points the history did not restore: their gateway_down marker, and the value the
        server re-sent (held back for the backfill) at the gateway's receive time."""
        for r in self.refs:
            if r.key in restored:
                r.pending_down = None
                r.resent = None
        self._write_down(sink, [r for r in self.refs if r.key not in restored])
        resent: list[Sample] = []
        for r in self.refs:
            if r.key not in restored and r.markers and r.last_ts is not None:
                # a newer value arrived since: it ended those outages
                r.markers = [m for m in r.markers if m >= r.last_ts]
            value = r.resent or r.first
            if value is not None and r.markers and value.ts <= max(r.markers):
                resent.append(self._reestablish(r, value))
            r.resent = None
            r.first = None  # the backfill is over: not read again this session
        if resent:
            sink.put_many(resent)

    async def _loop(self, client: Client, sink: Sink, groups: dict[float, list[PointRef]]) -> None:
        watchdog = self.conn.watchdog_s
        tick = min(0.2, watchdog / 5.0)
        due = {ms: time.monotonic() + ms / 1000.0 for ms in groups}
        while True:
            wake = min([tick + time.monotonic(), *due.values()])
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            await client.check_connection()
            if socket_closed(client):
                # the server closed the connection (stopped, restarted): asyncua notices only
                # when its next request fails (seconds later), the link is lost now
                raise ConnectorError(f"{self.conn.endpoint}: the server closed the connection")
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
        paths: list[str] = []
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
                paths.append(addr.browse_path or "")
        if not by_path:
            return
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
            if r.eu_range is None and (db := r.point.deadband) is not None and db.kind == "percent"
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

    def _on_sample(self, ref: PointRef, s: Sample) -> Sample | None:
        """The sample to store for what the server sent (None: drop it)."""
        first = ref.first_ts is None
        if first:
            ref.first_ts = s.ts
            self._first_seen.set()
        if s.quality is not Quality.GOOD:
            return s
        backfills = self._backfills(ref)
        if first:
            if self._backfilling:  # read by the backfill only (history.heal, _after_backfill)
                ref.first = s
            if ref.markers and not backfills and s.ts <= max(ref.markers):
                # re-sent on (re)connect with an outage outstanding: it re-establishes the state
                return self._reestablish(ref, s)
            if ref.last_ts is not None and s.ts <= ref.last_ts:
                if ref.markers:
                    ref.resent = s  # the backfill decides
                return None  # the value already stored, re-sent as the initial value
        if ref.last_ts is None or s.ts > ref.last_ts:
            ref.last_ts, ref.last_value = s.ts, s.value
        if ref.markers and not backfills:
            ref.markers = [m for m in ref.markers if m >= s.ts]
        return s

    def _reestablish(self, ref: PointRef, s: Sample) -> Sample:
        """``s`` stamped at the gateway's receive time (after every outstanding marker)."""
        ts = max(self.time_ns(), max(ref.markers, default=0) + 1)
        ref.markers = []
        self.reestablished += 1
        return replace(s, ts=ts)

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
        followed = [r for r in refs if r.follows]
        if followed:
            refs = [r for r in refs if not r.follows]
            got = await poll_followed(
                client,
                followed,
                self._following,
                (self.limits.max_nodes_per_read, self.limits.max_nodes_per_translate),
                now_ns(),
            )
            self._store_polled(sink, got)
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
            samples = [(r, r.sample(dv, now)) for r, dv in zip(part, results, strict=True)]
            self._store_polled(sink, samples)

    def _store_polled(self, sink: Sink, samples: Sequence[tuple[PointRef, Sample]]) -> None:
        out: list[Sample] = []
        for r, s in samples:
            if s.quality is Quality.BAD and r.status != s.status:
                sink.error(r.device, s.status)
            r.status = s.status if s.quality is Quality.BAD else ""
            kept = self._on_sample(r, s)
            if kept is not None:
                out.append(kept)
        if out:
            sink.put_many(out)

    def _bad(self, sink: Sink, ref: PointRef, status: str, now: int) -> None:
        log.warning("%s/%s: %s", ref.device, ref.point_id, status)
        ref.status = status
        sink.put(Sample(ref.device, ref.point_id, now, NAN, Quality.BAD, status))
        sink.error(ref.device, status)
