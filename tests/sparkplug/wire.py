"""An independent Sparkplug B payload writer and reader for the tests: the protobuf wire format
(varint, 64-bit, length-delimited, 32-bit) written by hand from Eclipse Tahu's sparkplug_b.proto
field numbers, so that the connector's decoding (Google protobuf) is checked against another
implementation."""

from __future__ import annotations

import struct
from typing import Any


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _len(field: int, data: bytes) -> bytes:
    return _key(field, 2) + varint(len(data)) + data


def metric(
    name: str | None = None,
    *,
    alias: int | None = None,
    ts: int | None = None,
    datatype: int | None = None,
    is_null: bool = False,
    int_value: int | None = None,
    long_value: int | None = None,
    float_value: float | None = None,
    double_value: float | None = None,
    boolean_value: bool | None = None,
    string_value: str | None = None,
) -> bytes:
    out = b""
    if name is not None:
        out += _len(1, name.encode())
    if alias is not None:
        out += _key(2, 0) + varint(alias)
    if ts is not None:
        out += _key(3, 0) + varint(ts)
    if datatype is not None:
        out += _key(4, 0) + varint(datatype)
    if is_null:
        out += _key(7, 0) + varint(1)
    if int_value is not None:
        out += _key(10, 0) + varint(int_value & 0xFFFFFFFF)
    if long_value is not None:
        out += _key(11, 0) + varint(long_value & 0xFFFFFFFFFFFFFFFF)
    if float_value is not None:
        out += _key(12, 5) + struct.pack("<f", float_value)
    if double_value is not None:
        out += _key(13, 1) + struct.pack("<d", double_value)
    if boolean_value is not None:
        out += _key(14, 0) + varint(int(boolean_value))
    if string_value is not None:
        out += _len(15, string_value.encode())
    return out


def payload(metrics: list[bytes], *, seq: int | None = None, ts: int | None = None) -> bytes:
    out = b""
    if ts is not None:
        out += _key(1, 0) + varint(ts)
    for m in metrics:
        out += _len(2, m)
    if seq is not None:
        out += _key(3, 0) + varint(seq)
    return out


def read(data: bytes) -> dict[int, list[Any]]:
    """Fields of one message: number -> values (ints, or bytes for length-delimited)."""
    out: dict[int, list[Any]] = {}
    i = 0

    def var() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        k = var()
        field, wire = k >> 3, k & 7
        value: Any
        if wire == 0:
            value = var()
        elif wire == 2:
            n = var()
            value, i = data[i : i + n], i + n
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        else:
            value, i = data[i : i + 4], i + 4
        out.setdefault(field, []).append(value)
    return out
