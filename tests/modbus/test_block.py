"""The bulk decoder gives exactly the per-point decoder's values, qualities and statuses
(issue 16): every numeric type and byte order, scale and offset, NaN and infinities, strings and
register bits (fallback), short responses, coils."""

from __future__ import annotations

import math
import random
import struct
from typing import get_args

from config.modbus import ByteOrder
from config.models import DataType
from connectors.modbus.block import BlockDecoder
from connectors.modbus.codec import NUMERIC_TYPES, register_count
from connectors.modbus.plan import PointRef, ReadRequest, decode_response


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)


def _check(req: ReadRequest, words: list[int] | list[bool]) -> int:
    values, quality, status = BlockDecoder(req).decode(words)
    readings = decode_response(req, words)
    bad = 0
    for i, r in enumerate(readings):
        assert _same(float(values[i]), r.value), (req.points[i], values[i], r.value)
        assert int(quality[i]) == int(r.quality), req.points[i]
        assert status.get(i, "") == r.status, req.points[i]
        bad += bool(r.status)
    return bad


def _refs(rng: random.Random) -> tuple[list[PointRef], int]:
    refs: list[PointRef] = []
    addr = 0
    for k in range(300):
        choice = rng.random()
        bit: int | None = None
        length = None
        datatype: DataType
        if choice < 0.05:
            datatype = "string"
            length = rng.randint(1, 3)
        elif choice < 0.1:
            datatype, bit = "bool", rng.randint(0, 15)
        else:
            datatype = rng.choice(NUMERIC_TYPES)
        width = register_count(datatype, length)
        scale, offset = rng.choice([(1.0, 0.0), (0.1, 0.0), (2.5, -3.0), (1.0, 0.0)])
        order = rng.choice(get_args(ByteOrder))
        refs.append(
            PointRef(
                "d", f"p{k}", 1, "holding", addr, width, datatype, order, bit, scale, offset, 1000
            )
        )
        addr += width + rng.choice([0, 0, 1])
    return refs, addr


def test_bulk_equals_per_point_over_random_registers() -> None:
    rng = random.Random(16)
    bad = 0
    for _ in range(20):
        refs, count = _refs(rng)
        req = ReadRequest(1, "holding", 0, count, 1000, tuple(refs))
        words = [rng.randrange(0x10000) for _ in range(count)]
        # NaN, infinities and a negative zero where floats sit
        for r in refs:
            if r.datatype == "float32" and rng.random() < 0.2:
                words[r.address : r.address + 2] = rng.choice(
                    [[0x7FC0, 0], [0x7F80, 0], [0x8000, 0]]
                )
        bad += _check(req, words)
        # a short response: the points it does not cover are bad
        bad += _check(req, words[: count // 2])
    assert bad > 0  # the random blocks did hit NaN/inf/short cases


def test_coils_and_short_bit_responses() -> None:
    refs = [
        PointRef("d", f"c{a}", 1, "coil", a, 1, "bool", "ABCD", None, 1.0, 0.0, 1000)
        for a in (0, 1, 5, 9)
    ]
    req = ReadRequest(1, "coil", 0, 10, 1000, tuple(refs))
    bits = [True, False, False, False, False, True, False, False, False, True]
    assert _check(req, bits) == 0
    assert _check(req, bits[:6]) == 1
