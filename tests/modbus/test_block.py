"""The bulk decoder gives exactly the per-point decoder's values, qualities and statuses
(issue 16): every numeric type and byte order, scale and offset, NaN and infinities, strings and
register bits (fallback), short responses, coils."""

from __future__ import annotations

import math
import random
import struct
from typing import get_args

import numpy as np
import pytest

from config.modbus import ByteOrder
from config.models import DataType
from connectors.modbus import ModbusConnector, build
from connectors.modbus.block import BlockDecoder
from connectors.modbus.codec import NUMERIC_TYPES, register_count
from connectors.modbus.plan import PointRef, ReadRequest, decode_response
from connectors.simulators.meters import MeterServer, UnitImage
from tests.modbus.helpers import Recorder, device, running, site
from tests.support.net import free_port


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)


def _check(req: ReadRequest, words: list[int] | list[bool]) -> int:
    readings = decode_response(req, words)
    decoder = BlockDecoder(req)
    # as a list (pymodbus) and as the lean client hands it: an array over the received bytes
    if req.table in ("coil", "discrete"):
        arrays = [np.array(words, dtype=np.bool_)]
    else:
        arrays = [np.frombuffer(struct.pack(f">{len(words)}H", *words), dtype=">u2")]
    bad = 0
    for given in [words, *arrays]:
        values, quality, status = decoder.decode(given)
        for i, r in enumerate(readings):
            assert _same(float(values[i]), r.value), (req.points[i], values[i], r.value)
            assert int(quality[i]) == int(r.quality), req.points[i]
            assert status.get(i, "") == r.status, req.points[i]
            bad += bool(r.status) and given is words
    return bad


@pytest.mark.parametrize("datatype", NUMERIC_TYPES)
@pytest.mark.parametrize("order", get_args(ByteOrder))
def test_requests_of_one_type_and_order_take_the_slice_path_with_the_same_results(
    datatype: DataType, order: ByteOrder
) -> None:
    rng = random.Random(f"{datatype}{order}")
    width = register_count(datatype)
    for gap, (scale, offset) in [(0, (1.0, 0.0)), (0, (0.1, -3.0)), (1, (1.0, 0.0)), (2, (2.5, 1))]:
        refs = [
            PointRef(
                "d",
                f"p{k}",
                1,
                "holding",
                3 + k * (width + gap),
                width,
                datatype,
                order,
                None,
                scale,
                offset,
                1000,
            )
            for k in range(40)
        ]
        count = refs[-1].end + 1
        req = ReadRequest(1, "holding", 0, count, 1000, tuple(refs))
        decoder = BlockDecoder(req)
        assert decoder.only is not None
        assert decoder.only.dense == (gap == 0)
        words = [rng.randrange(0x10000) for _ in range(count)]
        for r in refs[:8]:  # NaN, infinities, negative zero (of floats; any bits for integers)
            words[r.address : r.end] = rng.choice(
                [[0x7FC0] + [0] * (width - 1), [0x7F80] + [0] * (width - 1), [0x8000] * width]
            )
        _check(req, words)
        _check(req, words[: count // 2])  # short: the general path


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


def test_blocks_per_device_run_with_statuses_and_one_points_tuple() -> None:
    refs = [
        PointRef(d, f"p{a}", 1, "holding", a, 1, "uint16", "ABCD", None, 1.0, 0.0, 1000)
        for d, a in (("a", 0), ("a", 1), ("b", 2), ("b", 3))
    ]
    dec = BlockDecoder(ReadRequest(1, "holding", 0, 4, 1000, tuple(refs)))
    first = dec.blocks(5, *dec.decode([1, 2, 3, 4]))
    assert [(b.device, b.points, b.values.tolist(), b.statuses) for b in first] == [
        ("a", ("p0", "p1"), [1.0, 2.0], None),
        ("b", ("p2", "p3"), [3.0, 4.0], None),
    ]
    assert all(b.ts.tolist() == [5, 5] for b in first)
    # a short response: the uncovered point is bad with its status; same points tuples
    again = dec.blocks(6, *dec.decode([1, 2, 3]))
    assert again[0].statuses is None
    assert again[1].statuses == ("", "short_response")
    assert again[1].quality.tolist() == [0, 2]
    assert all(x.points is y.points for x, y in zip(first, again, strict=True))


async def test_connector_hands_blocks_not_samples() -> None:
    server = MeterServer({1: UnitImage(holding={a: a + 1 for a in range(20)})}, port=free_port())
    await server.start()
    try:
        points = [
            {"id": f"h{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(20)
        ]
        (conn,) = build(site([device("m", server.port, points)]))
        assert isinstance(conn, ModbusConnector)
        sink = Recorder()

        def no_samples(*_: object) -> None:
            raise AssertionError("a good poll went through put/put_many")

        sink.put = no_samples  # type: ignore[method-assign]
        sink.put_many = no_samples  # type: ignore[method-assign]
        sink.put_block = sink.blocks.append  # type: ignore[method-assign]
        async with running(conn.run(sink)):
            await sink.wait(lambda: len(sink.blocks) >= 3)
    finally:
        await server.stop()
    blocks = sink.blocks
    assert all(len(b) == 20 and b.points is blocks[0].points for b in blocks)
    assert blocks[-1].values.tolist() == [float(a + 1) for a in range(20)]
    assert not blocks[-1].quality.any()
