"""A lean Modbus TCP client for the poll loop: MBAP framing with :mod:`struct`, reads only.

The connector's hot path is one read request after another (function codes 1, 2, 3, 4); a
general library spends most of a request in its framer, transaction manager and a Python int
per register. Here a request is one ``struct.pack`` and one ``transport.write``; a response is
cut from the stream by its MBAP length and its data handed over as a numpy array straight
from the received bytes (registers as big-endian ``uint16``, bits unpacked), never a Python
object per register.

:class:`Framer` is the pure part (bytes in, frames out; a test feeds it hand-built frames);
:class:`LeanTcpClient` is the asyncio protocol around it. One request is outstanding at a time
(the connector reads one after another), with its own transaction id; a response for a
transaction no longer waited for (it timed out) is dropped. What cannot be a Modbus TCP
response to the request (protocol id not 0, a length out of range, another unit or function,
a byte count that does not match) raises :class:`FrameError` and closes the connection: the
stream can no longer be trusted to be in step, and the supervisor reconnects. An answer from
another unit id raises :class:`UnitMismatch` and keeps the connection.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length, unit id
_REQUEST = struct.Struct(">HHHBBHH")  # MBAP + function, address, count
MAX_FRAME = 260  # MBAP (7) + PDU (at most 253)
READ_FUNCTIONS = frozenset({1, 2, 3, 4})
_MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125}


class WireError(Exception):
    """The connection is unusable (lost, or the peer sent what is not Modbus TCP)."""


class FrameError(WireError):
    """A frame that cannot be a Modbus TCP response (the message says what is wrong)."""


class UnitMismatch(Exception):
    """A well-framed answer from another unit id than the request's (the stream is still in
    step: the connection stays; the read counts as unanswered, as with pymodbus). A request
    to unit 0 takes any unit id in the answer."""


class ExceptionResponse(Exception):
    """The device answered with a Modbus exception (``code``: 1 illegal function, 2 illegal
    data address, ...)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"modbus exception {code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Frame:
    """One response frame: MBAP fields and the PDU (function code first)."""

    tid: int
    unit: int
    pdu: bytes


def request_frame(tid: int, unit: int, function: int, address: int, count: int) -> bytes:
    """The bytes of a read request (function 1-4)."""
    if function not in READ_FUNCTIONS:
        raise ValueError(f"function {function} is not a read of coils/inputs/registers")
    if not 1 <= count <= _MAX_COUNT[function]:
        raise ValueError(f"count {count} out of range for function {function}")
    if not 0 <= address <= 0xFFFF or address + count > 0x10000:
        raise ValueError(f"address {address} (+{count}) out of range")
    return _REQUEST.pack(tid & 0xFFFF, 0, 6, unit & 0xFF, function, address, count)


class Framer:
    """Cuts complete frames from a byte stream (any split, several frames in one chunk)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that are not a complete frame yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """The complete frames of what was received so far; raises :class:`FrameError` on a
        header that cannot be Modbus TCP."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        at = 0
        size = len(buf)
        while size - at >= 7:
            tid, proto, length, unit = _MBAP.unpack_from(buf, at)
            if proto != 0:
                raise FrameError(f"protocol id {proto} in the MBAP header, not 0 (Modbus)")
            if not 2 <= length <= MAX_FRAME - 6:
                raise FrameError(f"MBAP length {length} out of range (2..254)")
            end = at + 6 + length
            if end > size:
                break
            frames.append(Frame(tid, unit, bytes(buf[at + 7 : end])))
            at = end
        if at:
            del buf[:at]
        return frames


def parse_read(
    frame: Frame, unit: int, function: int, count: int
) -> npt.NDArray[np.uint16] | npt.NDArray[np.bool_]:
    """The data of a read response: ``count`` registers as big-endian ``uint16`` (the bytes
    as received, no copy per register) or the bits as ``bool`` (as many as the bytes carry,
    at most ``count``; fewer is a short response the decoder marks). Raises
    :class:`ExceptionResponse` for an exception response and :class:`FrameError` for what does
    not answer the request."""
    pdu = frame.pdu
    if unit and frame.unit != unit:
        raise UnitMismatch(f"response from unit {frame.unit}, the request was to unit {unit}")
    fc = pdu[0]
    if fc == function | 0x80:
        if len(pdu) != 2:
            raise FrameError(f"exception response of {len(pdu)} bytes, not 2")
        raise ExceptionResponse(pdu[1])
    if fc != function:
        raise FrameError(f"response function {fc}, the request was function {function}")
    if len(pdu) < 2 or pdu[1] != len(pdu) - 2:
        got = pdu[1] if len(pdu) > 1 else "no"
        raise FrameError(f"byte count {got} does not match the {len(pdu) - 2} data bytes")
    size = len(pdu) - 2
    if function in (1, 2):
        data = np.frombuffer(pdu, dtype=np.uint8, offset=2)
        bits = np.unpackbits(data, bitorder="little")[:count]
        return bits.astype(np.bool_)
    if size % 2:
        raise FrameError(f"odd byte count {size} in a register response")
    if size > 2 * count:
        raise FrameError(f"{size // 2} registers in the response, {count} requested")
    return np.frombuffer(pdu, dtype=">u2", offset=2)


class LeanTcpClient(asyncio.Protocol):
    """Reads over one Modbus TCP connection (see the module docstring). Not for concurrent
    use: one :meth:`read` at a time, as the connector polls."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 3.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self._transport: asyncio.Transport | None = None
        self._framer = Framer()
        self._tid = 0
        self._waiting: tuple[int, asyncio.Future[Frame]] | None = None
        self._error: WireError | None = None
        self.dropped = 0  # responses of transactions no longer waited for (late, stale)

    # -- connection ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> bool:
        """Open the connection; False (not an exception) when it cannot be opened."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await loop.create_connection(lambda: self, self.host, self.port)
        except (OSError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._framer = Framer()
        self._error = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(self._error or WireError(f"connection lost ({exc or 'closed by the peer'})"))

    def _fail(self, error: WireError) -> None:
        if self._error is None:
            self._error = error
        if self._waiting is not None and not self._waiting[1].done():
            self._waiting[1].set_exception(error)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except FrameError as exc:
            self._fail(exc)
            if self._transport is not None:
                self._transport.abort()
            return
        for frame in frames:
            waiting = self._waiting
            if waiting is None or waiting[0] != frame.tid or waiting[1].done():
                self.dropped += 1  # the answer of a request that timed out: out of step
                continue
            waiting[1].set_result(frame)

    # -- reads --------------------------------------------------------------------------------
    async def read(
        self, function: int, address: int, count: int, unit: int, timeout_s: float | None = None
    ) -> npt.NDArray[np.uint16] | npt.NDArray[np.bool_]:
        """Registers (big-endian ``uint16``) or bits of one read; raises
        :class:`ExceptionResponse` (the device's exception code), :class:`WireError`
        (connection lost, or a frame that is not an answer: the connection is closed),
        ``TimeoutError`` after ``timeout_s`` without an answer, or is cancelled by the caller
        (either way the transaction is forgotten: a late answer is dropped by its transaction
        id). The timeout is one timer on the loop (cheaper than ``asyncio.timeout`` per read)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise self._error or WireError("not connected")
        self._tid = tid = (self._tid + 1) & 0xFFFF
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Frame] = loop.create_future()
        self._waiting = (tid, fut)
        timer = None if timeout_s is None else loop.call_later(timeout_s, _time_out, fut)
        try:
            transport.write(request_frame(tid, unit, function, address, count))
            frame = await fut
        finally:
            self._waiting = None
            if timer is not None:
                timer.cancel()
        try:
            return parse_read(frame, unit, function, count)
        except FrameError as exc:
            self._error = exc
            transport.abort()
            raise
        # UnitMismatch / ExceptionResponse: an answer in step, the connection stays


def _time_out(fut: asyncio.Future[Frame]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
