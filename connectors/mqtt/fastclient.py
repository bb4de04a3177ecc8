"""A paho client whose network thread reads in chunks and hands PUBLISH packets over in batches.

paho 2.x reads every packet with three ``recv`` calls (command byte, length bytes, body) after
one ``select``, builds an ``MQTTMessage`` per packet and queues one PUBACK per QoS 1 message
(each one a write to its wake-up socket pair, a ``select`` and a ``send``). That was about 60 %
of the gateway's CPU per message. :class:`ChunkClient` keeps paho for everything else (connect,
keep-alive, reconnect, subscriptions, TLS, the thread) and replaces only the read step:

* one ``recv`` of up to :data:`RECV_SIZE` bytes, then every complete packet in the buffer is
  handled in one go (a partial packet waits in the buffer for the next read);
* a PUBLISH of QoS 0 or 1 (MQTT 3.1.1, UTF-8 topic) is parsed here and the whole chunk's
  messages are handed to ``on_batch([(topic, payload, received_ns, retained, ack), ...])`` in
  one call; every other packet (CONNACK, SUBACK, PINGRESP, QoS 2, a topic that is not UTF-8, ...)
  goes through paho's own handler unchanged;
* nothing is acknowledged here: ``ack`` (0 for QoS 0) names the message's packet id on this
  connection (``connection << 16 | packet id``) and the owner calls :meth:`ChunkClient.send_acks`
  once the message is durably handed over (the MQTT connector: once its samples are stored). An
  ack of an earlier connection is never sent (the broker resends those messages on the new one,
  where the same packet id may name another message);
* ``disconnect`` waits for the chunk being handled, then nothing more is read or acknowledged.

The parts of paho this relies on are checked by :func:`supported`; when a paho release changes
them the connector uses the plain paho client (slower, same behaviour).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024  # bytes read per recv (about 1,000 messages of 200 bytes)
LINGER_S = 1.0  # on disconnect, how long the broker's close is waited for (see _sock_close)
PUBLISH = 0x30
PUBACK = 0x40

Batch = list[tuple[str, bytes, int, bool, int]]
OnBatch = Callable[[Batch], None]

# paho internals used here (checked at start: a release that renames them gets the plain client)
_METHODS = (
    "_packet_read",
    "_packet_handle",
    "_packet_queue",
    "_sock_recv",
    "_sock_close",
    "_easy_log",
)
_ATTRS = ("_in_packet", "_msgtime_mutex", "_last_bytes_received", "_protocol", "_manual_ack")


def supported(client: mqtt.Client) -> bool:
    """Whether paho and ``client`` have the internals :class:`ChunkClient` relies on."""
    return (
        all(callable(getattr(mqtt.Client, name, None)) for name in _METHODS)
        and all(hasattr(client, name) for name in _ATTRS)
        and callable(getattr(mqtt, "time_func", None))
    )


def split_packets(buf: bytearray | bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Complete MQTT packets at the start of ``buf``: ``[(first byte, body start, body end)]``
    and the number of bytes they use (what follows is an incomplete packet).

    Raises ValueError on a remaining length longer than 4 bytes (a protocol error).
    """
    out: list[tuple[int, int, int]] = []
    pos = 0
    size = len(buf)
    while size - pos >= 2:
        length = 0
        mult = 1
        i = pos + 1
        while True:
            if i >= size:
                return out, pos
            byte = buf[i]
            length += (byte & 127) * mult
            i += 1
            if not byte & 128:
                break
            mult *= 128
            if i - pos > 4:
                raise ValueError("MQTT remaining length longer than 4 bytes")
        end = i + length
        if end > size:
            break
        out.append((buf[pos], i, end))
        pos = end
    return out, pos


class ChunkClient(mqtt.Client):
    """paho ``Client`` with the chunked read path described in the module docstring."""

    def __init__(self, *args: Any, on_batch: OnBatch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_batch = on_batch
        self._rbuf = bytearray()
        # held by paho's thread while it reads and hands over a chunk, and by disconnect(): the
        # PUBACKs of every batch handed over are queued before the DISCONNECT
        self._reading = threading.Lock()
        self._closing = False
        # the connection number (1, 2, ...) and the lock that makes "still this connection?"
        # and queueing PUBACKs one step (see send_acks)
        self._ack_lock = threading.Lock()
        self._connection = 0

    def reconnect(self) -> MQTTErrorCode:
        # a new connection starts with an empty read buffer (as paho resets its _in_packet)
        self._rbuf = bytearray()
        self._closing = False
        with self._ack_lock:
            # before paho empties its outgoing packets: a PUBACK of the old connection is
            # either queued before (and discarded with them) or refused by send_acks
            self._connection += 1
        return super().reconnect()

    def pause(self) -> None:
        """Read nothing more (after the chunk being handled): what the broker still sends is
        not acknowledged, so it comes again on the next session instead of being lost."""
        with self._reading:
            self._closing = True

    def disconnect(self, *args: Any, **kwargs: Any) -> MQTTErrorCode:
        """paho's disconnect, after the chunk being handled (if any) was handed over; nothing
        more is read or acknowledged."""
        with self._reading:
            self._closing = True
            with self._ack_lock:
                self._connection += 1  # acknowledgements still on their way are dropped
            return super().disconnect(*args, **kwargs)

    def send_acks(self, acks: list[int]) -> int:
        """Queue the PUBACKs of ``acks`` (values of the batches' ``ack`` field) that belong to
        the current connection, in one write; returns how many were sent (any thread)."""
        packet = bytearray()
        with self._ack_lock:
            current = self._connection
            for ack in acks:
                if ack >> 16 == current:
                    packet += b"\x40\x02"
                    packet += (ack & 0xFFFF).to_bytes(2, "big")
            if packet:
                self._packet_queue(PUBACK, bytes(packet), 0, 0)
        return len(packet) // 4

    def _packet_read(self) -> MQTTErrorCode:
        with self._reading:
            if self._closing:
                self._discard()
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            return self._read_chunk()

    def _sock_close(self) -> None:
        """paho's socket close; after our DISCONNECT (closing), first a graceful one: no more
        writes (FIN), then what the broker still sends is read and dropped until it closes
        (at most LINGER_S). Closing with unread data would send a TCP reset, and the broker
        would drop what it had not read of ours yet (the last PUBACKs, the DISCONNECT)."""
        sock = self._sock
        if isinstance(sock, socket.socket) and self._closing:  # (a websocket wrapper: no)
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + LINGER_S
                while (left := deadline - time.monotonic()) > 0:
                    readable, _, _ = select.select([sock], [], [], left)
                    if not readable or not sock.recv(RECV_SIZE):
                        break
        super()._sock_close()

    def _discard(self) -> None:
        """(Closing) read and drop what the broker still sends: closing a socket with unread
        data sends a TCP reset, and the broker would then drop what it had not yet read of
        ours (the last PUBACKs, the DISCONNECT). What is dropped here is not acknowledged."""
        with contextlib.suppress(OSError):
            self._sock_recv(RECV_SIZE)

    def _read_chunk(self) -> MQTTErrorCode:
        try:
            data = self._sock_recv(RECV_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        now = mqtt.time_func()
        with self._msgtime_mutex:
            self._last_bytes_received = now
        buf = self._rbuf
        buf += data
        try:
            packets, used = split_packets(buf)
        except ValueError:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        if not packets:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        view = bytes(buf[:used])
        del buf[:used]
        return self._handle_chunk(view, packets)

    def _handle_chunk(self, data: bytes, packets: list[tuple[int, int, int]]) -> MQTTErrorCode:
        received = time.time_ns()
        batch: Batch = []
        connection = self._connection << 16
        fast = self._protocol != mqtt.MQTTv5 and not self._manual_ack
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        for index, (command, start, end) in enumerate(packets):
            if fast and command & 0xF0 == PUBLISH:
                qos = (command & 0x06) >> 1
                if qos < 2 and end - start >= 2:
                    tlen = (data[start] << 8) | data[start + 1]
                    body = start + 2 + tlen + (2 if qos else 0)
                    if tlen and body <= end:
                        try:
                            topic = data[start + 2 : start + 2 + tlen].decode("utf-8")
                        except UnicodeDecodeError:
                            pass
                        else:
                            ack = connection | (data[body - 2] << 8 | data[body - 1]) if qos else 0
                            batch.append((topic, data[body:end], received, bool(command & 1), ack))
                            continue
            # anything else: paho's own handler (after what came before it was handed over)
            if batch:
                self._on_batch(batch)
                batch = []
            self._in_packet = {
                "command": command,
                "have_remaining": 1,
                "remaining_count": [],
                "remaining_mult": 1,
                "remaining_length": end - start,
                "packet": bytearray(data[start:end]),
                "to_process": 0,
                "pos": 0,
            }
            try:
                rc = self._packet_handle()
            except MalformedPacket as exc:
                self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            finally:
                self._in_packet = {
                    "command": 0,
                    "have_remaining": 0,
                    "remaining_count": [],
                    "remaining_mult": 1,
                    "remaining_length": 0,
                    "packet": bytearray(b""),
                    "to_process": 0,
                    "pos": 0,
                }
            if rc or self._sock is None:
                if index + 1 < len(packets):
                    log.debug("%d packets left unread after rc %s", len(packets) - index - 1, rc)
                return rc
        if batch:
            self._on_batch(batch)
        return rc
