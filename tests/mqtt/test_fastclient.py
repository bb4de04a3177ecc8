"""The chunked read path of paho's thread (connectors.mqtt.fastclient)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from connectors.mqtt import MqttConnector, build
from connectors.mqtt.fastclient import ChunkClient, split_packets, supported
from tests.mqtt.helpers import RecordingSink, device, mqtt_site, point, publisher, running
from tests.support.mosquitto import Mosquitto


def _publish(
    topic: bytes, payload: bytes, qos: int = 0, mid: int = 0, retain: bool = False
) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    body += payload
    return bytes([0x30 | (qos << 1) | int(retain)]) + _length(len(body)) + body


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def test_split_packets_finds_whole_packets_and_leaves_a_partial_one() -> None:
    big = _publish(b"t", b"x" * 20_000)  # a 3-byte remaining length
    small = _publish(b"a/b", b"12", qos=1, mid=7)
    data = small + big + small
    packets, used = split_packets(data)
    assert used == len(data)
    assert [(c, e - s) for c, s, e in packets] == [
        (0x32, len(small) - 2),
        (0x30, len(big) - 4),
        (0x32, len(small) - 2),
    ]
    for cut in (1, 2, len(small) + 1, len(small) + 3, len(small) + len(big) - 1):
        packets, used = split_packets(data[: len(small) + cut] if cut > len(small) else data[:cut])
        assert used in (0, len(small), len(small) + len(big))
        assert len(packets) == {0: 0, len(small): 1, len(small) + len(big): 2}[used]
    assert split_packets(b"") == ([], 0)
    assert split_packets(b"\xd0\x00") == ([(0xD0, 2, 2)], 2)  # PINGRESP: empty body


def test_a_remaining_length_of_five_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        split_packets(b"\x30\xff\xff\xff\xff\x01")


Batches = list[list[tuple[str, bytes, int, bool, int]]]


def _client(batches: Batches) -> ChunkClient:
    client = ChunkClient(
        CallbackAPIVersion.VERSION2, client_id="x", protocol=mqtt.MQTTv311, on_batch=batches.append
    )
    assert supported(client)
    client._connection = 1  # as after connect()
    return client


def test_a_chunk_hands_publishes_over_in_one_batch_and_acks_only_when_told() -> None:
    batches: Batches = []
    client = _client(batches)
    data = (
        _publish(b"f/a", b"1", qos=1, mid=1)
        + _publish(b"f/b", b"2", qos=0)
        + _publish(b"f/c", b"3", qos=1, mid=300, retain=True)
    )
    packets, _ = split_packets(data)
    assert client._handle_chunk(data, packets) == mqtt.MQTT_ERR_SUCCESS
    assert len(batches) == 1
    assert [(t, p, r, a) for t, p, _, r, a in batches[0]] == [
        ("f/a", b"1", False, 1 << 16 | 1),
        ("f/b", b"2", False, 0),
        ("f/c", b"3", True, 1 << 16 | 300),
    ]
    assert not client._out_packet  # nothing acknowledged on receipt
    assert client.send_acks([a for *_, a in batches[0] if a]) == 2
    (ack,) = client._out_packet
    assert ack["packet"] == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x2c"  # PUBACK 1, PUBACK 300


def test_an_ack_of_an_earlier_connection_is_never_sent() -> None:
    """After a reconnect the same packet id may name another message: the old ack is dropped."""
    client = _client([])
    old = 1 << 16 | 7
    client._connection = 2  # what reconnect() does before paho opens the new socket
    assert client.send_acks([old]) == 0
    assert not client._out_packet
    assert client.send_acks([2 << 16 | 7]) == 1


def test_qos2_and_undecodable_topics_go_through_paho_in_order() -> None:
    batches: Batches = []
    client = _client(batches)
    # as when paho's thread runs: a socket, writes left to the loop
    ours, theirs = socket.socketpair()
    client._sock = ours
    client.on_socket_register_write = lambda _c, _u, _s: None
    seen: list[bytes] = []
    client.on_message = lambda _c, _u, msg: seen.append(bytes(msg.payload))
    data = (
        _publish(b"f/a", b"1", qos=1, mid=1)
        + _publish(b"f/\xff", b"bad topic", qos=0)
        + _publish(b"f/q2", b"two", qos=2, mid=9)
        + _publish(b"f/b", b"3", qos=1, mid=2)
    )
    packets, _ = split_packets(data)
    client._handle_chunk(data, packets)
    # the first message is handed over before paho handles the next packet
    assert [[m[1] for m in b] for b in batches] == [[b"1"], [b"3"]]
    assert seen == [b"bad topic"]  # paho's own path, its on_message
    assert 9 in client._in_messages  # QoS 2 waits for PUBREL in paho, as always
    # paho's PUBREC 9 goes out; the PUBACKs only once the owner sends them
    client.loop_write()
    assert theirs.recv(100) == b"\x50\x02\x00\x09"
    client.send_acks([batches[0][0][4], batches[1][0][4]])
    client.loop_write()
    assert theirs.recv(100) == b"\x40\x02\x00\x01\x40\x02\x00\x02"
    ours.close()
    theirs.close()


def _connector(port: int, client_id: str, max_bytes: int = 65536) -> MqttConnector:
    dev = device(
        "r1",
        port,
        [point("n", "r/r1/n", "/n")],
        client_id=client_id,
        max_payload_bytes=max_bytes,
    )
    (conn,) = build(mqtt_site([dev]))
    assert isinstance(conn, MqttConnector)
    return conn


@pytest.mark.parametrize("use_chunks", [True, False], ids=["chunks", "plain-paho"])
async def test_a_large_backlog_with_big_messages_arrives_whole_once_and_in_order(
    broker: Mosquitto, use_chunks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.mqtt import connector as connector_mod

    if not use_chunks:
        monkeypatch.setattr(connector_mod, "supported", lambda _client: False)
    conn = _connector(broker.port, f"t-chunk-{use_chunks}", max_bytes=1_000_000)
    assert isinstance(conn._make_client(), ChunkClient) is use_chunks
    first = RecordingSink()
    async with running(conn, first):
        await first.wait_for(lambda: first.up("r1") is True)
        await first.wait_for(lambda: conn._subscribed)
    n = 3000
    pad = "x" * 300_000  # bigger than one read: the packet spans several reads

    def work() -> None:
        with publisher(broker.port) as pub:
            for i in range(n):
                doc: dict[str, Any] = {"n": i}
                if i % 1000 == 500:
                    doc["pad"] = pad
                pub("r/r1/n", json.dumps(doc), 1)

    worker = threading.Thread(target=work, name="backlog")
    worker.start()
    worker.join(60)
    second = RecordingSink()
    async with running(conn, second):
        await second.wait_for(lambda: len(second.samples) >= n, within_s=30)
        # a SUBACK on the same connection proves the broker has read the PUBACKs sent before
        # it (a new connection taking the client id over may otherwise be served first, and the
        # broker then drops what it had not read of the old one: QoS 1 sends those again)
        client = conn._client
        assert client is not None
        subacks: list[int] = []
        client.on_subscribe = lambda _c, _u, mid, _codes, _p: subacks.append(mid)
        _, sync_mid = client.subscribe("r/sync", 1)
        await second.wait_for(lambda: sync_mid in subacks)
    assert [s.value for s in second.samples] == [float(i) for i in range(n)]
    assert not second.errors
    # every message was acknowledged: nothing comes again on the next session
    third = RecordingSink()
    async with running(conn, third):
        await third.wait_for(lambda: third.up("r1") is True)
        with publisher(broker.port) as pub:
            pub("r/r1/n", json.dumps({"n": -1}), 1)
        await third.wait_for(lambda: len(third.samples) >= 1)
    assert [s.value for s in third.samples] == [-1.0]


def test_nothing_is_read_or_acknowledged_after_disconnect() -> None:
    batches: Batches = []
    client = _client(batches)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    client.on_socket_register_write = lambda _c, _u, _s: None
    try:
        theirs.sendall(
            _publish(b"f/a", b"1", qos=1, mid=5) + _publish(b"f/b", b"2", qos=1, mid=6)[:4]
        )
        assert client._packet_read() == mqtt.MQTT_ERR_SUCCESS
        assert [[m[1] for m in b] for b in batches] == [[b"1"]]  # the partial one waits
        theirs.sendall(_publish(b"f/b", b"2", qos=1, mid=6)[4:])
        client.send_acks([batches[0][0][4]])
        client.disconnect()
        assert client.send_acks([batches[0][0][4]]) == 0  # after the DISCONNECT: never
        assert client._packet_read() == mqtt.MQTT_ERR_SUCCESS
        assert len(batches) == 1  # not handed over, not acknowledged: the broker sends it again
        client.loop_write()
        assert theirs.recv(100) == b"\x40\x02\x00\x05\xe0\x00"  # PUBACK 5, DISCONNECT
    finally:
        ours.close()
        theirs.close()
