"""The lean Modbus TCP client (connectors.modbus.wire): framing against hand-built frames, the
client against scripted raw-socket servers on loopback, and the connector with either client."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from connectors.base import ConnectorError, Quality
from connectors.modbus import ModbusConnector, PlanError, build
from connectors.modbus.codec import encode_raw
from connectors.modbus.wire import (
    ExceptionResponse,
    Frame,
    FrameError,
    Framer,
    LeanTcpClient,
    UnitMismatch,
    WireError,
    parse_read,
    request_frame,
)
from connectors.simulators.meters import MeterServer, UnitImage
from tests.modbus.helpers import Recorder, device, running, site
from tests.support.net import free_port


def response(tid: int, unit: int, function: int, data: bytes, *, count: int | None = None) -> bytes:
    """A hand-built read response: MBAP + function + byte count + data."""
    pdu = bytes([function, len(data) if count is None else count]) + data
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def exception(tid: int, unit: int, function: int, code: int) -> bytes:
    return struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, code)


def regs(*words: int) -> bytes:
    return struct.pack(f">{len(words)}H", *words)


# -- framing ---------------------------------------------------------------------------------


def test_request_frame_bytes() -> None:
    assert request_frame(0x0102, 7, 3, 100, 125) == bytes.fromhex("0102 0000 0006 07 03 0064 007d")
    with pytest.raises(ValueError, match="count 126 out of range"):
        request_frame(1, 1, 3, 0, 126)
    with pytest.raises(ValueError, match="not a read"):
        request_frame(1, 1, 6, 0, 1)


def test_a_frame_split_over_many_tcp_reads_comes_out_once_whole() -> None:
    wire = response(5, 1, 3, regs(1, 2, 3))
    framer = Framer()
    got: list[Frame] = []
    for i in range(len(wire)):  # one byte per read
        got += framer.feed(wire[i : i + 1])
        assert len(got) == (1 if i == len(wire) - 1 else 0)
    assert got == [Frame(5, 1, bytes([3, 6]) + regs(1, 2, 3))]
    assert framer.pending == 0


def test_two_responses_and_a_half_in_one_read() -> None:
    a, b, c = (response(t, 1, 4, regs(t)) for t in (1, 2, 3))
    framer = Framer()
    first = framer.feed(a + b + c[:4])
    assert [f.tid for f in first] == [1, 2]
    assert framer.pending == 4
    assert [f.tid for f in framer.feed(c[4:])] == [3]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (struct.pack(">HHHB", 1, 1, 5, 1) + b"\x03\x02\x00\x01", "protocol id 1"),
        (struct.pack(">HHHB", 1, 0, 1, 1), "MBAP length 1 out of range"),
        (struct.pack(">HHHB", 1, 0, 600, 1), "MBAP length 600 out of range"),
    ],
)
def test_a_header_that_is_not_modbus_tcp_is_a_frame_error(wire: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        Framer().feed(wire)


def test_registers_are_a_big_endian_view_of_the_received_bytes() -> None:
    (frame,) = Framer().feed(response(1, 1, 3, regs(0x1234, 0xFFFF, 0)))
    words = parse_read(frame, 1, 3, 3)
    assert words.dtype == np.dtype(">u2")
    assert words.tolist() == [0x1234, 0xFFFF, 0]


def test_bits_are_unpacked_lsb_first_and_cut_to_the_count() -> None:
    (frame,) = Framer().feed(response(1, 1, 1, bytes([0b00000101, 0b1])))
    assert parse_read(frame, 1, 1, 9).tolist() == [True, False, True] + [False] * 5 + [True]


def test_exception_response_carries_its_code() -> None:
    (frame,) = Framer().feed(exception(1, 1, 3, 2))
    with pytest.raises(ExceptionResponse) as err:
        parse_read(frame, 1, 3, 10)
    assert err.value.code == 2


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        # truncated: the byte count says 6 data bytes, the frame carries 4
        (response(1, 1, 3, regs(1, 2), count=6), "byte count 6 does not match the 4"),
        (response(1, 1, 4, regs(1)), "function 4, the request was function 3"),
        (response(1, 1, 3, b"\x00\x01\x02"), "odd byte count 3"),
        (response(1, 1, 3, regs(1, 2, 3)), "3 registers in the response, 2 requested"),
        (struct.pack(">HHHBBBB", 1, 0, 4, 1, 0x83, 2, 0), "exception response of 3 bytes"),
    ],
)
def test_a_frame_that_does_not_answer_the_request_is_a_frame_error(
    wire: bytes, message: str
) -> None:
    (frame,) = Framer().feed(wire)
    with pytest.raises(FrameError, match=message):
        parse_read(frame, 1, 3, 2)


def test_an_answer_from_another_unit_is_a_mismatch_unless_the_request_was_to_unit_0() -> None:
    (frame,) = Framer().feed(response(1, 2, 3, regs(9)))
    with pytest.raises(UnitMismatch, match="from unit 2, the request was to unit 1"):
        parse_read(frame, 1, 3, 1)
    assert parse_read(frame, 0, 3, 1).tolist() == [9]


async def test_another_units_answer_keeps_the_link_and_reads_as_a_timeout() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(response(tid, 99, 3, regs(5)))

    async with scripted(script) as port:
        pts = [{"id": "p", "datatype": "uint16", "modbus": {"address": 0}}]
        (conn,) = build(site([device("d", port, pts, timeout_s=0.2)]))
        assert isinstance(conn, ModbusConnector)
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: conn.stats.timeouts >= 2)
    assert sink.links == [("d", True), ("d", False)]  # one connection all along
    assert {s.status for s in sink.of("d", "p")} == {"timeout"}
    assert sink.errors[("d", "timeout")] >= 2


# -- the client against scripted servers on loopback -----------------------------------------

Script = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[int]:
    """A raw-socket server: ``script(tid, request, writer)`` answers each 12-byte request."""

    handlers: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                req = await reader.readexactly(12)
                await script(struct.unpack(">H", req[:2])[0], req, writer)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        for task in handlers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


async def connected(port: int) -> LeanTcpClient:
    client = LeanTcpClient("127.0.0.1", port)
    assert await client.connect()
    return client


async def test_a_response_written_in_pieces_is_read_whole() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        wire = response(tid, 1, 3, regs(*range(10)))
        for i in (0, 3, 9):  # the MBAP header cut, then the PDU cut
            w.write(wire[i : {0: 3, 3: 9, 9: len(wire)}[i]])
            await w.drain()
            await asyncio.sleep(0.01)

    async with scripted(script) as port:
        client = await connected(port)
        assert (await client.read(3, 0, 10, 1)).tolist() == list(range(10))
        client.close()


async def test_a_wrong_transaction_id_is_dropped_and_the_right_one_taken() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(response((tid + 100) & 0xFFFF, 1, 3, regs(666)) + response(tid, 1, 3, regs(7)))

    async with scripted(script) as port:
        client = await connected(port)
        assert (await client.read(3, 0, 1, 1)).tolist() == [7]
        assert client.dropped == 1
        client.close()


async def test_a_late_answer_after_a_timeout_is_not_taken_for_the_next_request() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        if tid == 1:
            await asyncio.sleep(0.2)  # answered after the client gave up
        w.write(response(tid, 1, 3, regs(tid)))

    async with scripted(script) as port:
        client = await connected(port)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.read(3, 0, 1, 1)
        assert (await client.read(3, 0, 1, 1)).tolist() == [2]
        assert client.dropped == 1
        client.close()


async def test_the_reads_own_timeout_forgets_the_transaction() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        if tid == 1:
            await asyncio.sleep(0.2)  # answered after the read's own timer gave up
        w.write(response(tid, 1, 3, regs(tid)))

    async with scripted(script) as port:
        client = await connected(port)
        began = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await client.read(3, 0, 1, 1, timeout_s=0.05)
        assert asyncio.get_running_loop().time() - began < 0.15
        assert (await client.read(3, 0, 1, 1, timeout_s=1.0)).tolist() == [2]
        assert client.dropped == 1
        assert not asyncio.get_running_loop()._scheduled or all(  # type: ignore[attr-defined]
            h.cancelled()
            for h in asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        )
        client.close()


async def test_exception_response_from_the_server() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(exception(tid, req[6], req[7], 2))

    async with scripted(script) as port:
        client = await connected(port)
        with pytest.raises(ExceptionResponse) as err:
            await client.read(4, 10, 2, 3)
        assert err.value.code == 2
        assert client.connected  # an exception is an answer: the link is fine
        client.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda tid: response(tid, 1, 3, regs(1), count=4), "byte count 4"),
        (lambda tid: struct.pack(">HHHB", tid, 9, 5, 1) + b"\x03\x02\x00\x01", "protocol id 9"),
    ],
)
async def test_a_garbled_frame_is_a_clear_error_and_closes_the_link(
    answer: Callable[[int], bytes], message: str
) -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(answer(tid))

    async with scripted(script) as port:
        client = await connected(port)
        with pytest.raises(WireError, match=message):
            await client.read(3, 0, 2, 1)
        await asyncio.sleep(0.01)
        assert not client.connected
        with pytest.raises(WireError):
            await client.read(3, 0, 2, 1)


async def test_the_peer_closing_mid_frame_is_a_lost_connection() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(response(tid, 1, 3, regs(1, 2))[:9])
        await w.drain()
        w.close()

    async with scripted(script) as port:
        client = await connected(port)
        with pytest.raises(WireError, match="connection lost"):
            await client.read(3, 0, 2, 1)
        assert not client.connected


async def test_connect_refused_is_false_not_an_exception() -> None:
    assert not await LeanTcpClient("127.0.0.1", free_port()).connect()


# -- the connector with the lean client ------------------------------------------------------


async def test_a_garbled_frame_ends_the_connector_with_one_clear_error() -> None:
    async def script(tid: int, req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(response(tid, 1, 3, regs(1), count=9))

    async with scripted(script) as port:
        pts = [{"id": "p", "datatype": "uint16", "modbus": {"address": 0}}]
        (conn,) = build(site([device("d", port, pts)]))
        sink = Recorder()
        with pytest.raises(ConnectorError, match="byte count 9 does not match"):
            await asyncio.wait_for(conn.run(sink), 5)
    assert sink.links == [("d", True), ("d", False)]


def test_devices_on_one_endpoint_agree_on_the_client() -> None:
    pts = [{"id": "p", "datatype": "uint16", "modbus": {"address": 0}}]
    with pytest.raises(PlanError, match="client pymodbus differs"):
        build(site([device("a", 1502, pts), device("b", 1502, pts, unit=2, client="pymodbus")]))


@pytest.mark.parametrize("client", ["lean", "pymodbus"])
async def test_both_clients_read_the_same_values_and_statuses(client: str) -> None:
    image = UnitImage(
        holding={
            **dict(enumerate(encode_raw(-2.5, "float32", "CDAB"))),
            10: 0xFFFE,
            **dict(zip((20, 21, 22, 23), encode_raw(-7, "int64"), strict=True)),
        },
        input={0: 42},
        coil={0: True, 1: False, 2: True},
    )
    pts: list[dict[str, Any]] = [
        {"id": "f", "datatype": "float32", "modbus": {"address": 0, "order": "CDAB"}},
        {"id": "i", "datatype": "int16", "scale": 0.5, "modbus": {"address": 10}},
        {"id": "q", "datatype": "int64", "modbus": {"address": 20}},
        {"id": "missing", "datatype": "uint16", "modbus": {"address": 500}},
        {"id": "in", "datatype": "uint16", "modbus": {"table": "input", "address": 0}},
        {"id": "c0", "datatype": "bool", "modbus": {"table": "coil", "address": 0}},
        {"id": "c2", "datatype": "bool", "modbus": {"table": "coil", "address": 2}},
    ]
    server = MeterServer({1: image}, port=free_port())
    await server.start()
    try:
        (conn,) = build(site([device("d", server.port, pts, client=client)]))
        assert isinstance(conn, ModbusConnector)
        sink = Recorder()
        async with running(conn.run(sink)):
            await sink.wait(lambda: conn.stats.cycles >= 2 and sink.latest("d", "c2") is not None)
    finally:
        await server.stop()
    got = {p: sink.latest("d", p) for p in ("f", "i", "q", "missing", "in", "c0", "c2")}
    assert {p: s.value for p, s in got.items() if s and s.quality == Quality.GOOD} == {
        "f": -2.5,
        "i": -1.0,
        "q": -7.0,
        "in": 42.0,
        "c0": 1.0,
        "c2": 1.0,
    }
    missing = got["missing"]
    assert missing is not None
    assert missing.status == "modbus_exception_2"
    assert sink.errors[("d", "modbus_exception_2")] >= 1
