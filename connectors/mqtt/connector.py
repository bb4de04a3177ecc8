"""MQTT connector: one broker connection serving one or more devices of the site file.

paho's network thread only hands messages (topic, payload, receive time) to the event loop: it
appends them to a deque (all the messages of one socket read at once, see
:mod:`connectors.mqtt.fastclient`) and, when no drain is pending, schedules one with
``loop.call_soon_threadsafe`` (the drain runs 2 ms later, so that a burst costs one wake-up of
the loop instead of one per message; 20 ms later while messages come at 5,000/s or more, so
that each device's messages make fewer, larger blocks). Decoding, routing and every call into
the sink happen on the event loop. paho reconnects by itself with a capped backoff; with
``clean_session: false`` and a fixed client id the broker keeps the subscriptions and queues
QoS 1 messages while the gateway is away. A link that stays down longer than
``reconnect_timeout_s``, a refused connection (bad credentials) or a failed TLS handshake raise
:class:`ConnectorError`.

Every loss of the link, however short, is recorded at once (the gateway's time): one bad
``link_lost`` marker (:mod:`config.markers`) per point of every device of the connection and
one ``link_lost`` error per device; the next good sample of a point ends its outage.

Acknowledgement (QoS 1): a message is acknowledged only once it is durably handed over. The
drain decodes a chunk of messages, puts their samples into the sink and, when the sink offers
``when_stored`` (the collector's queue does), sends the chunk's PUBACKs only when the store has
written them; a sink without it (a test sink) counts as durable once handed over. A message
dropped on overflow (of the inbox, or of the queue before it was written) is never
acknowledged: the connector then reconnects (:data:`REDELIVER_REASON`) so that the broker
sends the unacknowledged messages again on the new connection (persistent session). A
malformed message (whatever the reason, an exception of the decoder included) is counted under
its own reason, acknowledged with the others and never costs another message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.base import SecretError
from config.markers import LINK_LOST
from config.models import Device
from config.mqtt import MqttConnection
from connectors.base import NAN, ConnectorError, Quality, Sample, SampleBlock, Sink, now_ns
from connectors.mqtt.fastclient import ChunkClient, supported
from connectors.mqtt.link import link_wait
from connectors.mqtt.payload import (
    JSON_DECODER,
    ColumnPlan,
    FieldSpec,
    RouteDecoder,
    compile_spec,
    zone,
)
from connectors.mqtt.samples import good_samples
from connectors.mqtt.topics import TopicError, device_from_topic, device_level_ok, matches

log = logging.getLogger(__name__)

INBOX_LIMIT = 200_000  # messages waiting for the loop; beyond this they are dropped and counted
DRAIN_CHUNK = 5_000  # messages decoded per loop callback before yielding to other tasks
DRAIN_DELAY_S = 0.002  # a burst gathers for up to 2 ms before it is decoded in one go
# at a sustained rate of DRAIN_BUSY_RATE messages/s or more a drain gathers DRAIN_DELAY_BUSY_S:
# a device's messages become fewer, larger blocks (the writer's, store's and ledger's costs per
# block and per batch fall) for at most 20 ms more on a sample's way to the store; below it
# (a QoS 1 flow held by a small in-flight window among them) the short delay is kept
DRAIN_DELAY_BUSY_S = 0.02
DRAIN_BUSY_RATE = 5_000.0
ACK_WAIT_S = 5.0  # on stop, how long the acknowledgements of stored messages are waited for
REDELIVER_REASON = "messages dropped before they were stored"
_ROUTE_CACHE_LIMIT = 10_000
_REFUSED_AUTH = ("not authorized", "not authorised", "bad user name or password")


@dataclass(frozen=True, slots=True)
class Route:
    """Points of one device that come from topics matching ``topic_filter``."""

    topic_filter: str
    device: str
    device_level: int | None
    specs: tuple[FieldSpec, ...]
    max_bytes: int
    qos: int
    needs_json: bool = True
    stamped: frozenset[str] = frozenset()  # points whose time comes from the payload
    decoder: RouteDecoder = field(init=False, compare=False, repr=False)
    plan: ColumnPlan | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", RouteDecoder(self.specs))
        object.__setattr__(self, "plan", ColumnPlan.of(self.specs))


def routes_of(device: Device, site_timezone: str = "UTC") -> list[Route]:
    """The routes of an MQTT device (points grouped by topic filter); naive payload times are
    read in the device's ``mqtt.timezone``, else ``site_timezone``."""
    conn = device.mqtt
    if conn is None:
        raise TopicError(f"device {device.id!r} has no mqtt block")
    tz = zone(conn.timezone or site_timezone)
    by_filter: dict[str, list[FieldSpec]] = {}
    for point in device.points:
        assert point.mqtt is not None
        level = conn.topic_device_level
        if level is not None and not device_level_ok(point.mqtt.topic, level):
            raise TopicError(
                f"device {device.id!r} point {point.id!r}: topic_device_level {level} is not a "
                f"'+' (or under '#') of topic {point.mqtt.topic!r}"
            )
        by_filter.setdefault(point.mqtt.topic, []).append(compile_spec(point, tz))
    return [
        Route(
            topic_filter=flt,
            device=device.id,
            device_level=conn.topic_device_level,
            specs=tuple(specs),
            max_bytes=conn.max_payload_bytes,
            qos=conn.qos,
            needs_json=any(s.pointer is not None for s in specs),
            stamped=frozenset(s.point for s in specs if s.ts_pointer is not None),
        )
        for flt, specs in by_filter.items()
    ]


def ssl_context(conn: MqttConnection, resolve: Callable[[Path], Path]) -> ssl.SSLContext:
    """The client TLS context of ``conn.tls`` (CA, optional client certificate)."""
    tls = conn.tls
    assert tls is not None
    try:
        ctx = ssl.create_default_context(
            cafile=None if tls.ca_file is None else str(resolve(tls.ca_file))
        )
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(resolve(tls.cert_file)), str(resolve(tls.key_file)))
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(f"MQTT TLS files of {conn.host}:{conn.port}: {exc}") from None
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


_Item = tuple[str, bytes, int, bool, int]  # (topic, payload, receive time ns, retained, ack)
_Extract = Callable[[Any], tuple[Any, ...]]
# (smallest max_payload_bytes, (the route's rows, the device's code there, the plan's extract)
# per route)
_Fast = tuple[int, tuple[tuple["_RouteRows", int, _Extract], ...]]
_SCAN: Callable[[str, int], tuple[Any, int]] = JSON_DECODER.scan_once  # type: ignore[attr-defined]

_ONE_BY_ONE = 8  # a run this short with a reason in it is decoded message by message
_POINTS_SIZES = 16  # points tuples kept per (route, device): one per message count seen...
_POINTS_ROWS = 256  # ... for blocks of up to this many messages


class _Key:
    """A (route, device) of the columnar path, with the points tuples of its blocks by message
    count: the same tuple object every drain, so that the consumers' caches keyed by a points
    tuple's identity (the store's series ids, the deduplicator's positions) hit."""

    __slots__ = ("device", "points", "route")

    def __init__(self, route: Route, device: str) -> None:
        self.route = route
        self.device = device
        self.points: dict[int, tuple[str, ...]] = {}

    def points_of(self, count: int) -> tuple[str, ...]:
        """The points of a block of ``count`` messages (message-major)."""
        got = self.points.get(count)
        if got is None:
            plan = self.route.plan
            assert plan is not None
            got = plan.points * count
            if count <= _POINTS_ROWS and len(self.points) < _POINTS_SIZES:
                self.points[count] = got
        return got


class _RouteRows:
    """The rows of one route gathered by a run of columnar messages (all its devices together):
    per message the plan's row, the code of the device the topic names (an index into
    :attr:`keys`, given once per device) and the message itself."""

    __slots__ = ("_codes_by_device", "codes", "items", "keys", "route", "rows")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.keys: list[_Key] = []
        self._codes_by_device: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.codes: list[int] = []
        self.items: list[_Item] = []

    def code_of(self, device: str) -> int:
        code = self._codes_by_device.get(device)
        if code is None:
            code = self._codes_by_device[device] = len(self.keys)
            self.keys.append(_Key(self.route, device))
        return code

    def take(self) -> tuple[list[tuple[Any, ...]], list[int], list[_Item]]:
        """The rows gathered (emptied)."""
        got = (self.rows, self.codes, self.items)
        self.rows, self.codes, self.items = [], [], []
        return got


class MqttConnector:
    """Reads the devices of one broker connection (see the module docstring)."""

    def __init__(
        self,
        conn: MqttConnection,
        devices: Sequence[Device],
        *,
        client_id: str,
        resolve: Callable[[Path], Path] = lambda p: p,
        site_timezone: str = "UTC",
    ) -> None:
        self.conn = conn
        self.client_id = client_id
        self.devices: tuple[str, ...] = tuple(d.id for d in devices)
        self.name = f"mqtt:{conn.host}:{conn.port}/{client_id}"
        self.routes: tuple[Route, ...] = tuple(
            r for d in devices for r in routes_of(d, site_timezone)
        )
        # the points of each configured device (the link_lost markers of an outage)
        self._points: dict[str, tuple[str, ...]] = {
            d.id: tuple(p.id for p in d.points) for d in devices
        }
        self._resolve = resolve
        # state shared with paho's thread: only the deque, the flags and the drop counter
        self._inbox: collections.deque[tuple[str, bytes, int, bool, int]] = collections.deque()
        self._scheduled = False
        self._dropped = 0
        self._dropped_unacked = False  # a QoS 1 message was dropped: reconnect for redelivery
        self._plain_connection = 0  # connection number of the plain paho client (fallback)
        # state of the event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self._client: mqtt.Client | None = None
        self._changed = asyncio.Event()
        self._connected = False
        self._ever_connected = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._fatal: ConnectorError | None = None
        self._stopping = False
        self._subscribed = False
        self._sub_mid: int | None = None  # SUBACK awaited before the link counts as up
        self._sub_session_present = False
        self._route_cache: dict[str, tuple[tuple[Route, str | None], ...]] = {}
        self._fast_routes: dict[str, _Fast] = {}  # topic -> its columnar path (see _decode)
        self._route_rows: dict[int, _RouteRows] = {id(r): _RouteRows(r) for r in self.routes}
        self._pending: list[_RouteRows] = []  # the routes with rows gathered, first seen first
        self._seen: dict[str, str] = {}  # device named by a topic -> its configured template
        self._warned: set[tuple[str, str]] = set()
        self._when_stored: Callable[[Callable[[bool], None]], None] | None = None
        self._acks_pending = 0  # drains whose acknowledgements wait for the store
        self._last_drain = 0.0  # time.monotonic() of the previous drain
        self._busy = False  # the previous drain saw DRAIN_BUSY_RATE messages/s or more
        self._acks_idle = asyncio.Event()
        self.messages = 0  # messages decoded (for health pages and benchmarks)
        self.acked = 0  # PUBACKs sent
        self.unacked = 0  # QoS 1 messages left unacknowledged (dropped before they were stored)
        self.outages = 0  # losses of the broker link while it was up

    @property
    def connected(self) -> bool:
        """Whether the broker link is up (as last reported by paho)."""
        return self._connected

    # ---- subscriptions -------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, int]]:
        """Distinct topic filters with the highest QoS any route asks for."""
        qos: dict[str, int] = {}
        for r in self.routes:
            qos[r.topic_filter] = max(qos.get(r.topic_filter, 0), r.qos)
        return sorted(qos.items())

    # ---- paho's thread: hand over only -----------------------------------------------------
    def _on_message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """(The plain paho client, with manual acknowledgements.)"""
        received = time.time_ns()
        ack = (self._plain_connection << 16 | msg.mid) if msg.qos == 1 else 0
        if len(self._inbox) >= INBOX_LIMIT:
            self._dropped += 1
            if ack:
                self._dropped_unacked = True
            return
        payload = msg.payload
        self._inbox.append(
            (
                msg.topic,
                payload if isinstance(payload, bytes) else bytes(payload),
                received,
                bool(msg.retain),
                ack,
            )
        )
        if not self._scheduled:
            self._scheduled = True
            self._call(self._drain_later)

    def _on_batch(self, batch: list[tuple[str, bytes, int, bool, int]]) -> None:
        """The messages of one read of :class:`ChunkClient` (paho's thread): hand over only."""
        inbox = self._inbox
        room = INBOX_LIMIT - len(inbox)
        if room < len(batch):
            lost = batch[max(room, 0) :]
            self._dropped += len(lost)
            if any(m[4] for m in lost):
                self._dropped_unacked = True
            batch = batch[: max(room, 0)]
        inbox.extend(batch)
        if not self._scheduled:
            self._scheduled = True
            self._call(self._drain_later)

    def _on_connect(self, _c: Any, _u: Any, flags: mqtt.ConnectFlags, rc: Any, _p: Any) -> None:
        self._plain_connection += 1  # (plain client) messages after this CONNACK are its own
        self._call(self._connected_cb, bool(rc.is_failure), str(rc), bool(flags.session_present))

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _p: Any) -> None:
        self._call(self._disconnected_cb, str(rc))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        failed = [str(c) for c in codes if c.is_failure]
        if failed:
            self._call(self._subscribe_refused, failed)
        self._call(self._subscribed_cb, mid)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        # RuntimeError: the loop closed while paho was still delivering
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(func, *args)

    # ---- the event loop ------------------------------------------------------------------
    def _connected_cb(self, failed: bool, reason: str, session_present: bool) -> None:
        if failed:
            hint = ""
            if reason.lower() in _REFUSED_AUTH:
                hint = " (check username and password)"
            self._fatal = ConnectorError(
                f"MQTT broker {self.conn.host}:{self.conn.port} refused the connection: "
                f"{reason}{hint}"
            )
            self._changed.set()
            return
        client = self._client
        # a resumed persistent session keeps its subscriptions: subscribing again would make
        # the broker resend its retained messages. Subscribe on the first connection of each
        # run anyway (the site file may have changed the topics) and when the session is new.
        if client is not None and (not session_present or not self._subscribed):
            _rc, self._sub_mid = client.subscribe(self.subscriptions())
            self._sub_session_present = session_present
            self._subscribed = True
            # the link is up for the devices once the broker confirmed the subscription:
            # a message published before the SUBACK may not reach a new session
            return
        self._link_up(session_present)

    def _subscribed_cb(self, mid: int) -> None:
        if self._sub_mid is not None and mid == self._sub_mid:
            self._sub_mid = None
            self._link_up(self._sub_session_present)

    def _link_up(self, session_present: bool) -> None:
        self._connected = True
        self._ever_connected = True
        self._down_since = None
        log.info(
            "%s connected (session present: %s)", self.name, "yes" if session_present else "no"
        )
        self._set_links(True)
        self._changed.set()

    def _disconnected_cb(self, reason: str) -> None:
        if self._connected and not self._stopping:
            log.warning("%s lost its link: %s", self.name, reason)
            self._mark_lost()
        self._connected = False
        self._down_reason = reason
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._set_links(False)
        self._changed.set()

    def _mark_lost(self) -> None:
        """One ``link_lost`` marker per point of every device of the connection (configured,
        and named by a topic) and one ``link_lost`` error per device, at the gateway's time;
        what was received before the loss is decoded first."""
        sink = self._sink
        if sink is None:
            return
        self.outages += 1
        self._drain_rest()
        ts = now_ns()
        markers: list[Sample] = []
        devices = {d: d for d in self.devices} | self._seen
        for dev, template in devices.items():
            sink.error(dev, LINK_LOST)
            markers.extend(
                Sample(dev, p, ts, NAN, Quality.BAD, LINK_LOST)
                for p in self._points.get(template, ())
            )
        if markers:
            sink.put_many(markers)

    def _subscribe_refused(self, codes: list[str]) -> None:
        log.error("%s: the broker refused a subscription: %s", self.name, ", ".join(codes))
        if self._sink is not None:
            for dev in self.devices:
                self._sink.error(dev, "subscribe_refused")

    def _set_links(self, up: bool) -> None:
        if self._sink is None:
            return
        for dev in (*self.devices, *sorted(set(self._seen) - set(self.devices))):
            self._sink.link(dev, up)

    def _routes_for(self, topic: str) -> tuple[tuple[Route, str | None], ...]:
        """Routes matching ``topic``, each with the device it names (None: not an id)."""
        found = self._route_cache.get(topic)
        if found is None:
            found = tuple(
                (
                    r,
                    r.device
                    if r.device_level is None
                    else device_from_topic(topic, r.device_level),
                )
                for r in self.routes
                if matches(r.topic_filter, topic)
            )
            if len(self._route_cache) >= _ROUTE_CACHE_LIMIT:
                self._route_cache.clear()
            self._route_cache[topic] = found
        return found

    def _drain_later(self) -> None:
        """Decode a moment later, so that a burst is handled in one go (fewer wake-ups)."""
        delay = DRAIN_DELAY_BUSY_S if self._busy else DRAIN_DELAY_S
        asyncio.get_running_loop().call_later(delay, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        sink = self._sink
        if sink is None:
            self._inbox.clear()
            return
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            for _ in range(dropped):
                sink.error(self.devices[0], "dropped:inbox_full")
        if self._dropped_unacked:
            self._dropped_unacked = False
            self.unacked += 1
            self._redeliver()
        inbox = self._inbox
        count = min(len(inbox), DRAIN_CHUNK)
        now = time.monotonic()
        # the rate of the messages since the previous drain (or its first chunk)
        self._busy = count >= DRAIN_BUSY_RATE * max(now - self._last_drain, DRAIN_DELAY_S)
        self._last_drain = now
        pop = inbox.popleft  # (only this loop takes from the inbox: count are there)
        items = [pop() for _ in range(count)]
        if count == DRAIN_CHUNK and inbox and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)
        self._decode(sink, items)
        acks = [item[4] for item in items if item[4]]
        if acks:
            self._ack_when_stored(acks)

    def _decode(self, sink: Sink, items: list[_Item]) -> None:
        """Decode the messages of one drain, in order. Runs of messages that take the columnar
        path (not retained, every route of the topic with a :class:`ColumnPlan`, its device
        already seen, the document decoded and every field found) gather as rows per route,
        all devices together, and are converted once per route (:meth:`_emit_route`); any other
        message is decoded alone (:meth:`_handle`), after what was gathered before it was
        handed over (a point's samples stay in order)."""
        fast_routes = self._fast_routes
        pending = self._pending
        samples: list[Sample] = []
        fast_count = 0
        try:
            for item in items:
                topic, payload, received, retained, _ack = item
                fast = None if retained else (fast_routes.get(topic) or self._fast(topic))
                if fast is not None and len(payload) <= fast[0]:
                    parts = fast[1]
                    row: tuple[Any, ...] = ()
                    rows: list[tuple[Any, ...]] = []
                    try:
                        text = payload.decode("utf-8")
                        doc, end = _SCAN(text, 0)
                        if end != len(text) and text[end:].strip(" \t\n\r"):  # JSON's only
                            parts = ()
                        elif len(parts) == 1:
                            row = parts[0][2](doc)
                        else:
                            rows = [extract(doc) for _st, _code, extract in parts]
                    except Exception:  # needs a reason: the per-message path reports it
                        parts = ()
                    if parts:
                        fast_count += 1
                        if samples:
                            sink.put_many(samples)
                            samples = []
                        if len(parts) == 1:
                            st, code, _extract = parts[0]
                            if not st.rows:
                                pending.append(st)
                            st.rows.append(row)
                            st.codes.append(code)
                            st.items.append(item)
                            continue
                        for (st, code, _extract), got in zip(parts, rows, strict=True):
                            if not st.rows:
                                pending.append(st)
                            st.rows.append(got)
                            st.codes.append(code)
                            st.items.append(item)
                        continue
                if pending:
                    self._flush_rows(sink)
                try:
                    self._handle(sink, samples, topic, payload, received, retained)
                except Exception as exc:  # a decoder bug must not cost the other messages
                    self._decode_failed(sink, topic, exc)
            if pending:
                self._flush_rows(sink)
            if samples:
                sink.put_many(samples)
        finally:
            self.messages += fast_count
            for st in pending:  # (only when the sink raised: nothing is carried over)
                st.take()
            pending.clear()

    def _fast(self, topic: str) -> _Fast | None:
        """The columnar path of ``topic``'s messages (None: the per-message path): its routes
        all have a plan and name a device already seen. Kept per topic once found (a device
        seen stays seen)."""
        routes = self._routes_for(topic)
        if not routes:
            return None
        seen = self._seen
        parts: list[tuple[_RouteRows, int, _Extract]] = []
        for route, device in routes:
            if route.plan is None or device is None or device not in seen:
                return None
            st = self._route_rows[id(route)]
            parts.append((st, st.code_of(device), route.plan.extract))
        fast = (min(r.max_bytes for r, _ in routes), tuple(parts))
        cache = self._fast_routes
        if len(cache) >= _ROUTE_CACHE_LIMIT:
            cache.clear()
        cache[topic] = fast
        return fast

    def _flush_rows(self, sink: Sink) -> None:
        """Hand over the rows gathered, route by route (first seen first)."""
        pending = self._pending
        for st in pending:
            rows, codes, items = st.take()
            if rows:
                self._emit_route(sink, st, rows, codes, items)
        pending.clear()

    def _emit_route(
        self,
        sink: Sink,
        st: _RouteRows,
        rows: list[tuple[Any, ...]],
        codes: list[int],
        items: list[_Item],
    ) -> None:
        """The rows of one route (any number of devices) converted in one go, then handed over
        as one block per device (its rows in arrival order; devices first seen first), each
        with its device's points tuple for that many messages. When the conversion needs a
        reason, each device's rows are handed to :meth:`_emit` (which finds it)."""
        plan = st.route.plan
        assert plan is not None
        n = len(rows)
        received = [item[2] for item in items]
        try:
            cols = plan.columns(rows, received)
        except Exception:  # a conversion bug: these messages one by one (isolated there)
            log.debug("columnar conversion failed; decoding %d messages one by one", n)
            cols = None
        keys = st.keys
        first = codes[0]
        one_device = codes.count(first) == n
        if cols is None:
            if one_device:  # (these rows just failed to convert: halved at once)
                self._emit(sink, keys[first], rows, received, items, converts=False)
                return
            groups: dict[int, tuple[list[tuple[Any, ...]], list[int], list[_Item]]] = {}
            for code, row, at, item in zip(codes, rows, received, items, strict=True):
                group = groups.get(code)
                if group is None:
                    group = groups[code] = ([], [], [])
                group[0].append(row)
                group[1].append(at)
                group[2].append(item)
            for code, (got, at_, its) in groups.items():
                self._emit(sink, keys[code], got, at_, its)
            return
        ts, values = cols
        quality = np.zeros(len(values), dtype=np.uint8)
        if one_device:
            key = keys[first]
            sink.put_block(SampleBlock(key.device, key.points_of(n), ts, values, quality))
            return
        width = len(plan.points)
        code_arr = np.array(codes, dtype=np.intp)
        order = np.argsort(code_arr, kind="stable")  # by device, arrival order kept
        ts = ts.reshape(n, width)[order].ravel()
        values = values.reshape(n, width)[order].ravel()
        by_code = code_arr[order]
        bounds = np.concatenate(([0], np.flatnonzero(by_code[1:] != by_code[:-1]) + 1, [n]))
        starts = bounds[:-1]
        edges = bounds.tolist()
        device_codes = by_code[starts].tolist()
        for g in np.argsort(order[starts]).tolist():  # devices in first-seen order
            lo, hi = edges[g], edges[g + 1]
            key = keys[device_codes[g]]
            a, b = lo * width, hi * width
            sink.put_block(
                SampleBlock(key.device, key.points_of(hi - lo), ts[a:b], values[a:b], quality[a:b])
            )

    def _emit(
        self,
        sink: Sink,
        key: _Key,
        got: list[tuple[Any, ...]],
        received: list[int],
        items: list[_Item],
        converts: bool = True,
    ) -> None:
        """Hand over the rows of one device whose route's conversion needed a reason: a run
        is halved until the halves convert, and the last few rows around a reason are decoded
        one by one (which reports it), in order. ``converts=False``: these rows are known not
        to convert."""
        route, device = key.route, key.device
        plan = route.plan
        assert plan is not None
        cols = None
        if converts:
            try:
                cols = plan.columns(got, received)
            except Exception:  # a conversion bug: these messages one by one (isolated there)
                log.debug("columnar conversion failed; decoding %d messages one by one", len(got))
        if cols is not None:
            ts, values = cols
            quality = np.zeros(len(values), dtype=np.uint8)
            sink.put_block(SampleBlock(device, key.points_of(len(got)), ts, values, quality))
            return
        if len(got) > _ONE_BY_ONE:
            half = len(got) // 2
            self._emit(sink, key, got[:half], received[:half], items[:half])
            self._emit(sink, key, got[half:], received[half:], items[half:])
            return
        out: list[Sample] = []
        for topic, payload, at, _retained, _ack in items:
            try:
                self._handle_route(sink, out, route, device, topic, payload, at)
            except Exception as exc:  # a decoder bug must not cost the other messages
                self._decode_failed(sink, topic, exc)
        if out:
            sink.put_many(out)

    def _ack_when_stored(self, acks: list[int]) -> None:
        """Send ``acks`` once the samples put so far are stored (see the module docstring)."""
        when_stored = self._when_stored
        if when_stored is None:
            self._send_acks(acks, True)
            return
        self._acks_pending += 1
        self._acks_idle.clear()

        def settled(ok: bool) -> None:
            self._acks_pending -= 1
            if not self._acks_pending:
                self._acks_idle.set()
            self._send_acks(acks, ok)

        when_stored(settled)

    def _send_acks(self, acks: list[int], ok: bool) -> None:
        client = self._client
        if not ok:
            # some of these messages' samples were dropped (queue overflow): the broker must
            # send them again, which it does on a new connection
            self.unacked += len(acks)
            self._redeliver()
            return
        if client is None:
            return
        if isinstance(client, ChunkClient):
            self.acked += client.send_acks(acks)
            return
        current = self._plain_connection
        for ack in acks:
            if ack >> 16 == current:
                client.ack(ack & 0xFFFF, 1)
                self.acked += 1

    def _redeliver(self) -> None:
        """End this run (ConnectorError): the new connection gets the unacknowledged messages."""
        if self._fatal is None and not self._stopping:
            self._fatal = ConnectorError(
                f"MQTT {self.conn.host}:{self.conn.port}: {REDELIVER_REASON}; reconnecting so "
                "that the broker sends them again"
            )
            self._changed.set()

    def _decode_failed(self, sink: Sink, topic: str, exc: Exception) -> None:
        """A message whose decoding raised: counted as ``malformed:decode_error`` for the
        devices its topic routes to (the first one logged with its traceback)."""
        devices = {d or r.device for r, d in self._routes_for(topic)} or {self.devices[0]}
        for dev in sorted(devices):
            sink.error(dev, "malformed:decode_error")
        if ("", "decode_error") not in self._warned:
            self._warned.add(("", "decode_error"))
            log.error(
                "%s: decoding a message on %r failed (%s: %s); skipped, counted as "
                "malformed:decode_error",
                self.name,
                topic,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )

    def _handle(
        self,
        sink: Sink,
        samples: list[Sample],
        topic: str,
        payload: bytes,
        received: int,
        retained: bool = False,
    ) -> None:
        """Decode one message into ``samples``. A retained message (the broker's last known
        value, sent on subscribing) gives ``uncertain`` samples with status ``retained`` for
        points without a payload timestamp: its value is real, its time is not known."""
        self.messages += 1
        for route, device in self._routes_for(topic):
            self._handle_route(sink, samples, route, device, topic, payload, received, retained)

    def _handle_route(
        self,
        sink: Sink,
        samples: list[Sample],
        route: Route,
        device: str | None,
        topic: str,
        payload: bytes,
        received: int,
        retained: bool = False,
    ) -> None:
        """Decode one message for one of its routes into ``samples``."""
        if device is None:
            self._malformed(sink, route.device, "device_topic", topic)
            return
        if device not in self._seen:
            self._seen[device] = route.device
            if device not in self.devices:
                sink.link(device, True)
        decoded = route.decoder(payload, received, route.max_bytes)
        if retained:
            stamped = route.stamped
            samples.extend(
                Sample(device, p, ts, v)
                if p in stamped
                else Sample(device, p, ts, v, Quality.UNCERTAIN, "retained")
                for p, ts, v in decoded.values
            )
        else:
            good_samples(device, decoded.values, samples)
        for _point, reason in decoded.errors:
            self._malformed(sink, device, reason, topic)
        for p, ts, status in decoded.bad:  # e.g. unknown_text: the old text is not in force
            samples.append(Sample(device, p, ts, NAN, Quality.BAD, status))

    def _malformed(self, sink: Sink, device: str, reason: str, topic: str) -> None:
        sink.error(device, f"malformed:{reason}")
        if (device, reason) not in self._warned:
            self._warned.add((device, reason))
            log.warning(
                "%s: malformed message on %r for %s (%s); skipped, counted as malformed:%s "
                "(further ones are only counted)",
                self.name,
                topic,
                device,
                reason,
                reason,
            )

    # ---- lifecycle -----------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        conn = self.conn
        client: mqtt.Client = ChunkClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=conn.clean_session,
            protocol=mqtt.MQTTv311,
            on_batch=self._on_batch,
        )
        if not supported(client):
            log.warning(
                "%s: this paho release lacks what the chunked reader needs; using its plain client",
                self.name,
            )
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                clean_session=conn.clean_session,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if conn.username is not None:
            try:
                password = None if conn.password is None else conn.password.reveal()
            except SecretError as exc:
                raise ConnectorError(f"MQTT password of {self.name}: {exc}") from None
            client.username_pw_set(conn.username, password)
        if conn.tls is not None:
            client.tls_set_context(ssl_context(conn, self._resolve))
            if conn.tls.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(conn.reconnect_delay_s, conn.reconnect_max_delay_s)  # type: ignore[arg-type]
        client.connect_timeout = conn.connect_timeout_s
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        return client

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._sink = sink
        self._changed = asyncio.Event()
        self._connected = self._ever_connected = False
        self._fatal = None
        self._stopping = False
        self._subscribed = False
        self._down_since = None
        self._when_stored = getattr(sink, "when_stored", None)
        self._acks_pending = 0
        self._acks_idle = asyncio.Event()
        self._acks_idle.set()
        self._dropped_unacked = False
        client = self._make_client()
        self._client = client
        conn = self.conn
        connect = loop.run_in_executor(None, client.connect, conn.host, conn.port, conn.keepalive_s)
        started = False
        try:
            try:
                await asyncio.shield(connect)
            except ssl.SSLError as exc:
                raise ConnectorError(
                    f"TLS handshake with MQTT broker {conn.host}:{conn.port} failed: {exc}"
                ) from None
            except OSError as exc:
                raise ConnectorError(
                    f"cannot connect to MQTT broker {conn.host}:{conn.port}: {exc}"
                ) from None
            client.loop_start()
            started = True
            await self._supervise()
        finally:
            await self._shutdown(client, connect, started)

    async def _supervise(self) -> None:
        conn = self.conn
        deadline = time.monotonic() + conn.connect_timeout_s
        while True:
            if self._fatal is not None:
                raise self._fatal
            wait = link_wait(
                conn,
                now=time.monotonic(),
                deadline=deadline,
                ever_connected=self._ever_connected,
                connected=self._connected,
                down_since=self._down_since,
                reason=self._down_reason,
            )
            self._changed.clear()
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set, and the connector would then never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()

    async def _shutdown(
        self, client: mqtt.Client, connect: asyncio.Future[Any], started: bool
    ) -> None:
        cancelled = False
        if not connect.done():
            # the first connect is still running in the executor: let it finish (bounded by
            # paho's connect timeout) so that its socket can be closed
            await asyncio.wait([connect], timeout=self.conn.connect_timeout_s + 1)
        if connect.done() and not connect.cancelled():
            connect.exception()  # retrieved: already reported (or it succeeded)
        if started and self._fatal is None and isinstance(client, ChunkClient):
            # a clean stop: read nothing more, decode what was read, and acknowledge what the
            # store writes within ACK_WAIT_S (the rest comes again on the next connection)
            client.pause()
            self._drain_rest()
            if not self._acks_idle.is_set():
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ACK_WAIT_S):
                            await self._acks_idle.wait()
                except asyncio.CancelledError:
                    cancelled = True  # cancelled again: stop now, then propagate
        self._stopping = True
        client.disconnect()
        if started:
            # shielded: a second cancellation must not leave paho's thread running
            await asyncio.shield(asyncio.to_thread(client.loop_stop))
        else:
            sock = client.socket()
            if sock is not None:
                sock.close()
        self._client = None
        self._set_links(False)
        self._drain_rest()
        self._loop = None
        if cancelled:
            raise asyncio.CancelledError

    def _drain_rest(self) -> None:
        """Decode what paho handed over before the thread stopped (nothing is dropped)."""
        while self._inbox and self._sink is not None:
            self._drain()
