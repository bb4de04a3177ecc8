"""A fast MQTT load generator for the benches: pre-encoded PUBLISH packets on raw sockets.

Every interval it offers ``rate * interval`` quality-station inspection documents (the shape of
``bench/bench_mqtt.py``: 5 points by JSON pointer and a payload timestamp in ms) on
``factory/<station>/inspection``, spread over the interval in ``slices`` bursts, QoS 0 or 1,
MQTT 3.1.1 framing written by hand. The packets of one interval are one numpy byte buffer built
once; per interval only the digits that change (timestamp, counters, the measured diameter's
last digit) are rewritten in place by a few vectorised operations, so that the generator costs
well under a microsecond per message and is not the limit of the bench:

* numbers are fixed width so that every packet keeps its length (counters start at
  1,000,000,000: ten digits, no padding needed; the timestamp in ms has 13 digits);
* packet ids: QoS 1 packets carry a fixed id per slot (the broker acknowledges each QoS 1
  PUBLISH with a PUBACK and keeps no state per inbound id); PUBACKs are read and counted by a
  thread per connection.

Run it as a child process (:func:`publish`) with ``connections`` sockets (the stations split
between them).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

COUNTER0 = 1_000_000_000  # ten digits from the start: fixed width without leading zeros
TS_DIGITS = 13
COUNTER_DIGITS = 10
_TS_MARK = b"9" * TS_DIGITS
_IN_MARK = b"8" * COUNTER_DIGITS
_PASS_MARK = b"7" * COUNTER_DIGITS


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def document(station: str) -> bytes:
    """The inspection document with marks where the changing digits go."""
    text = json.dumps(
        {
            "ts": 0,
            "station": station,
            "totals": {"inspected": 1, "passed": 2, "rejected": 1, "reworked": 0},
            "measure": {"diameter_mm": 25.001},
        },
        separators=(",", ":"),
    )
    text = text.replace('"ts":0', '"ts":' + _TS_MARK.decode())
    text = text.replace('"inspected":1', '"inspected":' + _IN_MARK.decode())
    text = text.replace('"passed":2', '"passed":' + _PASS_MARK.decode())
    return text.encode()


def packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    """One MQTT 3.1.1 PUBLISH packet."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _remaining(len(body)) + body


@dataclass
class TickBuffer:
    """The packets of one interval, ``per_station`` rows of one message per station, and the
    byte offsets of the digits rewritten every interval."""

    buf: npt.NDArray[np.uint8]
    ends: npt.NDArray[np.int64]  # end offset of each message (cumulative)
    row: npt.NDArray[np.int64]  # each message's row (its timestamp step within the interval)
    ts_at: npt.NDArray[np.int64]
    in_at: npt.NDArray[np.int64]
    pass_at: npt.NDArray[np.int64]
    diam_at: npt.NDArray[np.int64]

    @property
    def messages(self) -> int:
        return len(self.ends)


def build(stations: list[str], per_station: int, qos: int) -> TickBuffer:
    packets: list[bytes] = []
    rows: list[int] = []
    for j in range(per_station):
        for st in stations:
            mid = len(packets) % 65535 + 1
            packets.append(packet(f"factory/{st}/inspection", document(st), qos, mid))
            rows.append(j)
    blob = b"".join(packets)
    lengths = np.array([len(p) for p in packets], dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths

    def offsets(mark: bytes) -> npt.NDArray[np.int64]:
        # the same relative place in each packet of a station, found per packet
        return np.array(
            [s + p.index(mark) for s, p in zip(starts.tolist(), packets, strict=True)],
            dtype=np.int64,
        )

    diam_mark = b'"diameter_mm":25.00'
    return TickBuffer(
        buf=np.frombuffer(bytearray(blob), dtype=np.uint8).copy(),
        ends=ends,
        row=np.array(rows, dtype=np.int64),
        ts_at=offsets(_TS_MARK),
        in_at=offsets(_IN_MARK),
        pass_at=offsets(_PASS_MARK),
        diam_at=offsets(diam_mark) + len(diam_mark),
    )


def _put_digits(
    buf: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], values: npt.NDArray[np.int64], n: int
) -> None:
    """Write ``values`` as ``n`` decimal digits (most significant first) at ``at``."""
    v = values.copy()
    for d in range(n - 1, -1, -1):
        buf[at + d] = (v % 10 + 48).astype(np.uint8)
        v //= 10


def fill(tick: TickBuffer, base_ms: int, step_ms: float, k: int) -> None:
    """Rewrite the changing digits for interval number ``k`` (counters) starting at
    ``base_ms`` (timestamps ``base_ms + row * step_ms``)."""
    ts = base_ms + (tick.row * step_ms).astype(np.int64)
    _put_digits(tick.buf, tick.ts_at, ts, TS_DIGITS)
    count = COUNTER0 + 1 + k * (int(tick.row.max()) + 1) + tick.row
    _put_digits(tick.buf, tick.in_at, count, COUNTER_DIGITS)
    _put_digits(tick.buf, tick.pass_at, count - 1, COUNTER_DIGITS)
    tick.buf[tick.diam_at] = ((count % 7) + 48).astype(np.uint8)


def connect(port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    sock.sendall(b"\x10" + _remaining(len(body)) + body)
    got = b""
    while len(got) < 4:
        chunk = sock.recv(4 - len(got))
        if not chunk:
            raise ConnectionError("the broker closed the connection before CONNACK")
        got += chunk
    if got[0] != 0x20 or got[3] != 0:
        raise ConnectionError(f"CONNACK refused: {got!r}")
    return sock


def publish(
    port: int,
    rate: float,
    interval_ms: int,
    qos: int,
    stop: Any,
    sent: Any,
    acked: Any,
    stations: int = 100,
    connections: int = 1,
    slices: int = 20,
) -> None:
    """Child process: offer ``rate`` messages/s until ``stop`` is set; ``sent`` and
    ``acked`` (shared counters) count the messages written and the PUBACKs read."""
    per_tick = max(1, round(rate * interval_ms / 1000))
    stations = min(stations, per_tick)
    per_station = max(1, per_tick // stations)
    step_ms = interval_ms / per_station
    names = [f"qs{i}" for i in range(stations)]
    groups = [names[c::connections] for c in range(connections) if names[c::connections]]
    ticks = [build(g, per_station, qos) for g in groups]
    socks = [connect(port, f"loadgen-{c}-{time.monotonic_ns()}") for c in range(len(groups))]
    acks = [0] * len(socks)

    def read_acks(c: int, sock: socket.socket) -> None:
        rest = 0
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            rest += len(data)
            acks[c] = rest // 4  # PUBACK: 4 bytes, the only packet the broker sends us

    for c, sock in enumerate(socks):
        threading.Thread(target=read_acks, args=(c, sock), daemon=True).start()
    tick_s = interval_ms / 1000
    start = time.time()
    k = 0
    try:
        while not stop.is_set():
            base = start + k * tick_s
            for tick in ticks:
                fill(tick, int(base * 1000), step_ms, k)
            for s in range(slices):
                at = base + tick_s * s / slices
                wait = at - time.time()
                if wait > 0:
                    time.sleep(wait)
                for tick, sock in zip(ticks, socks, strict=True):
                    lo_row = per_station * s // slices
                    hi_row = per_station * (s + 1) // slices
                    if hi_row == lo_row:
                        continue
                    width = len(tick.ends) // per_station
                    lo = int(tick.ends[lo_row * width - 1]) if lo_row else 0
                    hi = int(tick.ends[hi_row * width - 1])
                    sock.sendall(tick.buf.data[lo:hi])
                    with sent.get_lock():
                        sent.value += (hi_row - lo_row) * width
                with acked.get_lock():
                    acked.value = sum(acks)
                if stop.is_set():
                    break
            k += 1
            # a late interval is not made up for with a burst
            k = max(k, int((time.time() - start) / tick_s))
    finally:
        for sock in socks:
            try:
                sock.sendall(b"\xe0\x00")
                sock.close()
            except OSError:
                pass
