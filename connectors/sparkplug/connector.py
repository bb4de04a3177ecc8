"""Sparkplug B host application over paho-mqtt 2.x: one broker connection per edge node.

It subscribes (QoS 1) to the node's topics ``spBv1.0/<group>/+/<node>`` and
``spBv1.0/<group>/+/<node>/+``, and once the broker confirmed the subscription asks the node for
a rebirth (NCMD ``Node Control/Rebirth``): the host learns the aliases and the values in force
whenever it (re)connects, so it never depends on a birth it may have missed. paho's thread only
hands (topic, payload, receive time) to the event loop — all the messages of one socket read at
once, through the chunked reader of :mod:`connectors.mqtt.fastclient` — and decoding and the
sink run on the loop.

With ``host_id`` it is a *primary host application*: it publishes the retained
``spBv1.0/STATE/<host_id>`` ``{"online": true, "timestamp": T}`` once subscribed, registers
``{"online": false, "timestamp": T}`` as its MQTT will, and publishes the latter itself on a
clean stop (edge nodes configured to wait for their primary host publish only while it is
online).

The host's own link to the broker is part of what it knows: when it drops, every point of the
node gets a ``link_lost`` marker (messages may be missed until the rebirth that follows the
reconnection). A link down longer than ``reconnect_timeout_s`` or a refused connection raise
:class:`ConnectorError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.base import SecretError
from config.markers import LINK_LOST
from config.models import Device
from config.sparkplug import SparkplugConnection
from connectors.base import NAN, ConnectorError, Quality, Sample, Sink, now_ns
from connectors.mqtt.connector import ssl_context
from connectors.mqtt.fastclient import Batch, ChunkClient, supported
from connectors.mqtt.link import link_wait
from connectors.sparkplug.decode import BOOLEAN, NAMESPACE, REBIRTH_METRIC, parse_topic
from connectors.sparkplug.host import EdgeNodeHost, PointSpec, Target
from connectors.sparkplug.schema import DecodeError, Payload

log = logging.getLogger(__name__)

REBIRTH_MIN_INTERVAL_S = 5.0  # an unanswered rebirth request is repeated after this
INBOX_LIMIT = 200_000  # messages waiting for the loop; beyond this they are dropped and counted
DRAIN_CHUNK = 5_000  # messages decoded per loop callback before yielding to other tasks


def targets_of(devices: Sequence[Device]) -> dict[str | None, Target]:
    out: dict[str | None, Target] = {}
    for dev in devices:
        conn = dev.sparkplug
        assert conn is not None
        points = {}
        for p in dev.points:
            assert p.sparkplug is not None
            if p.sparkplug.metric in points:
                raise ValueError(f"device {dev.id!r}: metric {p.sparkplug.metric!r} named twice")
            points[p.sparkplug.metric] = PointSpec(p.id, p.scale, p.offset, p.enum)
        out[conn.device_id] = Target(dev.id, points)
    return out


def rebirth_payload(now_ms: int) -> bytes:
    """The NCMD that asks an edge node to publish its births again (Sparkplug 3.0, 6.4.x)."""
    payload = Payload(timestamp=now_ms)
    payload.metrics.add(name=REBIRTH_METRIC, timestamp=now_ms, datatype=BOOLEAN, boolean_value=True)
    return bytes(payload.SerializeToString())


class SparkplugConnector:
    """Host application of one edge node (see the module docstring)."""

    def __init__(
        self,
        conn: SparkplugConnection,
        devices: Sequence[Device],
        *,
        client_id: str,
        resolve: Callable[[Path], Path] = lambda p: p,
    ) -> None:
        self.conn = conn
        self.client_id = client_id
        self.site_devices = tuple(devices)
        self.devices: tuple[str, ...] = tuple(d.id for d in devices)
        self.name = f"sparkplug:{conn.host}:{conn.port}/{conn.group_id}/{conn.edge_node_id}"
        self.host = EdgeNodeHost(targets_of(devices))
        self._resolve = resolve
        self._inbox: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self._scheduled = False
        self._dropped = 0  # messages beyond INBOX_LIMIT (paho's thread counts, the loop reports)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self._client: mqtt.Client | None = None
        self._changed = asyncio.Event()
        self._connected = False
        self._ever_connected = False
        self._down_since: float | None = None
        self._fatal: ConnectorError | None = None
        self._sub_mid: int | None = None
        self._last_rebirth: float | None = None
        self._warned: set[str] = set()
        self._state_ts = 0
        self.messages = 0
        self.rebirths = 0

    @property
    def state_topic(self) -> str:
        """The host application's STATE topic (Sparkplug 3.0, "Sparkplug Host Application")."""
        return f"{NAMESPACE}/STATE/{self.conn.host_id}"

    def _state(self, *, online: bool) -> bytes:
        """A STATE payload; birth, death and will of one session carry the same timestamp."""
        doc = {"online": online, "timestamp": self._state_ts}
        return json.dumps(doc, separators=(",", ":")).encode()

    @property
    def topics(self) -> list[str]:
        base = f"{NAMESPACE}/{self.conn.group_id}/+/{self.conn.edge_node_id}"
        return [base, base + "/+"]

    # ---- paho's thread: hand over only -------------------------------------------------------
    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if len(self._inbox) >= INBOX_LIMIT:
            self._dropped += 1
            return
        self._inbox.append((msg.topic, bytes(msg.payload), time.time_ns()))
        if not self._scheduled:
            self._scheduled = True
            self._call(self._drain)

    def _on_batch(self, batch: Batch) -> None:
        """The messages of one read of :class:`ChunkClient` (paho's thread): hand over, and
        acknowledge at once (a Sparkplug host has a clean session: what a restart misses comes
        back by the rebirth it asks for, not by redelivery)."""
        room = max(INBOX_LIMIT - len(self._inbox), 0)
        if room < len(batch):
            self._dropped += len(batch) - room
        self._inbox.extend((t, p, r) for t, p, r, _retained, _ack in batch[:room])
        client = self._client
        if isinstance(client, ChunkClient):
            client.send_acks([ack for *_, ack in batch if ack])
        if not self._scheduled:
            self._scheduled = True
            self._call(self._drain)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._call(self._connected_cb, bool(rc.is_failure), str(rc))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._call(self._disconnected_cb, str(rc))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._call(self._subscribed_cb, mid)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed under paho
                loop.call_soon_threadsafe(func, *args)

    # ---- the event loop ------------------------------------------------------------------------
    def _connected_cb(self, failed: bool, reason: str) -> None:
        if failed:
            self._fatal = ConnectorError(
                f"MQTT broker {self.conn.host}:{self.conn.port} refused the connection: {reason}"
            )
            self._changed.set()
            return
        if self._client is not None:
            _rc, self._sub_mid = self._client.subscribe([(t, 1) for t in self.topics])

    def _subscribed_cb(self, mid: int) -> None:
        if mid != self._sub_mid:
            return
        self._connected = self._ever_connected = True
        self._down_since = None
        log.info("%s connected; asking for a rebirth", self.name)
        if self.conn.host_id is not None and self._client is not None:
            self._client.publish(self.state_topic, self._state(online=True), qos=1, retain=True)
        self._request_rebirth(force=True)
        self._changed.set()

    def _disconnected_cb(self, reason: str) -> None:
        if self._connected and self._sink is not None:
            log.warning("%s lost its link: %s", self.name, reason)
            ts = now_ns()
            self._sink.put_many(
                Sample(d.id, p.id, ts, NAN, Quality.BAD, LINK_LOST)
                for d in self.site_devices
                for p in d.points
            )
            for d in self.devices:
                self._sink.link(d, False)
        self._connected = False
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._changed.set()

    def _request_rebirth(self, *, force: bool = False) -> None:
        if not self.conn.rebirth or self._client is None:
            return
        now = time.monotonic()
        # one request until the node answers with an NBIRTH (again after a while without one)
        if (
            not force
            and self._last_rebirth is not None
            and now - self._last_rebirth < REBIRTH_MIN_INTERVAL_S
        ):
            return
        self._last_rebirth = now
        self.rebirths += 1
        topic = f"{NAMESPACE}/{self.conn.group_id}/NCMD/{self.conn.edge_node_id}"
        self._client.publish(topic, rebirth_payload(time.time_ns() // 1_000_000), qos=0)

    def _drain(self) -> None:
        self._scheduled = False
        sink = self._sink
        if sink is None:
            self._inbox.clear()
            return
        if self._dropped:  # the node's seq shows the gap too: a rebirth follows
            dropped, self._dropped = self._dropped, 0
            for _ in range(dropped):
                sink.error(self.devices[0], "dropped:inbox_full")
        samples: list[Sample] = []
        rebirth = False
        inbox = self._inbox
        for _ in range(DRAIN_CHUNK):
            if not inbox:
                break
            topic, data, received = inbox.popleft()
            rebirth |= self._handle(sink, samples, topic, data, received)
        else:
            if inbox and not self._scheduled and self._loop is not None:
                self._scheduled = True  # the rest in a later callback: other tasks run between
                self._loop.call_soon(self._drain)
        if samples:
            sink.put_many(samples)
        if rebirth:
            self._request_rebirth()

    def _handle(
        self, sink: Sink, samples: list[Sample], topic: str, data: bytes, received: int
    ) -> bool:
        self.messages += 1
        parsed = parse_topic(topic)
        owner = self.devices[0]
        if parsed is None:
            self._malformed(sink, owner, "topic", topic)
            return False
        if len(data) > self.conn.max_payload_bytes:
            self._malformed(sink, owner, "oversized", topic)
            return False
        try:
            payload = Payload.FromString(data)
        except DecodeError:
            self._malformed(sink, owner, "not_protobuf", topic)
            return False
        out = self.host.handle(parsed, payload, received)
        if parsed.kind == "NBIRTH":
            self._last_rebirth = None  # answered: the next gap asks again at once
        samples.extend(out.samples)
        for dev, up in out.links:
            sink.link(dev, up)
        for dev, reason in out.errors:
            if reason.startswith("malformed:"):
                self._malformed(sink, dev, reason.split(":", 1)[1], topic)
            else:
                sink.error(dev, reason)
                log.info("%s: %s on %s", self.name, reason, topic)
        return out.rebirth

    def _malformed(self, sink: Sink, device: str, reason: str, topic: str) -> None:
        sink.error(device, f"malformed:{reason}")
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(
                "%s: malformed message on %r (%s); skipped, counted as malformed:%s "
                "(further ones are only counted)",
                self.name,
                topic,
                reason,
                reason,
            )

    # ---- lifecycle -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        conn = self.conn
        # paho with the chunked reader of connectors.mqtt (a batch per socket read), else plain
        client: mqtt.Client = ChunkClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            on_batch=self._on_batch,
        )
        if not supported(client):
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                clean_session=True,
                protocol=mqtt.MQTTv311,
            )
        if conn.username is not None:
            try:
                password = None if conn.password is None else conn.password.reveal()
            except SecretError as exc:
                raise ConnectorError(f"MQTT password of {self.name}: {exc}") from None
            client.username_pw_set(conn.username, password)
        if conn.tls is not None:
            client.tls_set_context(ssl_context(conn, self._resolve))  # type: ignore[arg-type]
            if conn.tls.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(conn.reconnect_delay_s, conn.reconnect_max_delay_s)  # type: ignore[arg-type]
        client.connect_timeout = conn.connect_timeout_s
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        if conn.host_id is not None:
            self._state_ts = time.time_ns() // 1_000_000
            client.will_set(self.state_topic, self._state(online=False), qos=1, retain=True)
        return client

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._sink = loop, sink
        self._changed = asyncio.Event()
        self._connected = self._ever_connected = False
        self._fatal = None
        self._down_since = None
        self._last_rebirth = None
        client = self._make_client()
        self._client = client
        conn = self.conn
        connect = loop.run_in_executor(None, client.connect, conn.host, conn.port, conn.keepalive_s)
        started = False
        try:
            try:
                await asyncio.shield(connect)
            except OSError as exc:
                raise ConnectorError(
                    f"cannot connect to MQTT broker {conn.host}:{conn.port}: {exc}"
                ) from None
            client.loop_start()
            started = True
            await self._supervise()
        finally:
            if not connect.done():
                await asyncio.wait([connect], timeout=conn.connect_timeout_s + 1)
            if connect.done() and not connect.cancelled():
                connect.exception()
            was_connected, self._connected = self._connected, False  # a stop is not a lost link
            if was_connected and conn.host_id is not None:
                # a clean stop says so itself (the will is only for a lost connection)
                info = client.publish(self.state_topic, self._state(online=False), 1, True)
                await asyncio.shield(asyncio.to_thread(info.wait_for_publish, 2.0))
            client.disconnect()
            if started:
                await asyncio.shield(asyncio.to_thread(client.loop_stop))
            else:
                sock = client.socket()
                if sock is not None:
                    sock.close()
            self._client = None
            self._loop = None  # no more callbacks: what paho handed over is decoded here
            while self._inbox and self._sink is not None:
                self._drain()

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
            )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
