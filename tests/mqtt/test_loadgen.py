"""The benches' MQTT load generator (bench/mqtt_loadgen.py) writes valid MQTT 3.1.1 PUBLISH
packets whose JSON carries the values of the interval it was filled for."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import mqtt_loadgen


def parse(buf: bytes) -> list[tuple[int, str, int | None, bytes]]:
    """(flags byte, topic, packet id, payload) of every packet in ``buf``."""
    out = []
    i = 0
    while i < len(buf):
        first = buf[i]
        j, mult, length = i + 1, 1, 0
        while True:
            c = buf[j]
            length += (c & 127) * mult
            mult *= 128
            j += 1
            if not c & 128:
                break
        body = buf[j : j + length]
        assert len(body) == length, "truncated packet"
        i = j + length
        tlen = int.from_bytes(body[:2], "big")
        topic = body[2 : 2 + tlen].decode()
        qos = (first >> 1) & 3
        mid = int.from_bytes(body[2 + tlen : 4 + tlen], "big") if qos else None
        payload = body[2 + tlen + (2 if qos else 0) :]
        out.append((first, topic, mid, payload))
    return out


def test_an_interval_is_valid_packets_with_that_intervals_values() -> None:
    tick = mqtt_loadgen.build(["qs0", "qs17"], per_station=3, qos=1)
    base = 1_767_225_600_000
    for k in (0, 5):
        mqtt_loadgen.fill(tick, base, 250.0, k)
        packets = parse(tick.buf.tobytes())
        assert len(packets) == tick.messages == 6
        for n, (first, topic, mid, payload) in enumerate(packets):
            row, station = divmod(n, 2)
            name = ("qs0", "qs17")[station]
            assert first == 0x32  # PUBLISH, QoS 1
            assert topic == f"factory/{name}/inspection"
            assert mid == n + 1
            doc = json.loads(payload)
            assert doc["ts"] == base + row * 250
            count = mqtt_loadgen.COUNTER0 + 1 + k * 3 + row
            assert doc["totals"] == {
                "inspected": count,
                "passed": count - 1,
                "rejected": 1,
                "reworked": 0,
            }
            assert doc["measure"]["diameter_mm"] == 25.0 + (count % 7) / 1000
            assert doc["station"] == name


def test_qos0_packets_carry_no_packet_id() -> None:
    tick = mqtt_loadgen.build(["a"], per_station=2, qos=0)
    mqtt_loadgen.fill(tick, 1_767_225_600_000, 500.0, 1)
    packets = parse(tick.buf.tobytes())
    assert [(p[0], p[2]) for p in packets] == [(0x30, None), (0x30, None)]
    assert [json.loads(p[3])["ts"] for p in packets] == [1_767_225_600_000, 1_767_225_600_500]
