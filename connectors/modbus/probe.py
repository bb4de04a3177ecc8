"""Read one block of registers for ``shopfloor probe modbus`` and lay it out for an engineer.

:func:`read_block` does the single read (TCP or RTU) and turns every failure into a
:class:`ProbeError` with a message a plant engineer can act on; :func:`render` is pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from config.modbus import Table
from connectors.modbus.codec import decode_all, registers_to_bytes

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function (the device does not support this table / function code)",
    2: "illegal data address (no register at this address, or the block runs past the map)",
    3: "illegal data value (count not accepted)",
    4: "server device failure",
    5: "acknowledge (long operation in progress)",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond (unit id wrong or device off)",
}

FUNCTION_OF_TABLE: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class ProbeError(Exception):
    """The read failed; the message says why (exception code, timeout, connection)."""


@dataclass(frozen=True, slots=True)
class Target:
    """``HOST:PORT`` for Modbus TCP, or a serial device path (``/dev/ttyUSB0``) for RTU."""

    host: str | None = None
    port: int = 502
    serial_port: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        if text.startswith(("/", "rtu:", "COM")):
            return cls(serial_port=text.removeprefix("rtu:"))
        host, sep, port = text.rpartition(":")
        if not sep:
            return cls(host=text)
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ProbeError(f"target {text!r}: expected HOST:PORT (port 1..65535) or /dev/tty...")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        return self.serial_port or f"{self.host}:{self.port}"


async def read_block(
    target: Target,
    *,
    unit: int,
    table: Table,
    address: int,
    count: int,
    timeout_s: float = 2.0,
    baudrate: int = 9600,
    parity: str = "N",
) -> list[int] | list[bool]:
    """One read of ``count`` registers (or bits) at ``address``; raises :class:`ProbeError`."""
    limit = 2000 if table in ("coil", "discrete") else 125
    if not 1 <= count <= limit:
        raise ProbeError(f"count must be 1..{limit} for the {table} table, got {count}")
    if not 0 <= address <= 0xFFFF or address + count - 1 > 0xFFFF:
        raise ProbeError(f"address {address} + count {count} is outside 0..65535")
    if not 0 <= unit <= 247:
        raise ProbeError(f"unit must be 0..247, got {unit}")
    client: AsyncModbusTcpClient | AsyncModbusSerialClient
    if target.serial_port is not None:
        client = AsyncModbusSerialClient(
            target.serial_port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            parity=parity,
            timeout=timeout_s + 1,
            retries=0,
            reconnect_delay=0,
        )
    else:
        assert target.host is not None
        client = AsyncModbusTcpClient(
            target.host, port=target.port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
    try:
        if not await client.connect():
            raise ProbeError(f"cannot connect to {target} (nothing listening, or unreachable)")
        call = {
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
        }[table]
        try:
            async with asyncio.timeout(timeout_s):
                response = await call(address, count=count, device_id=unit)
        except (TimeoutError, ModbusException):
            raise ProbeError(
                f"no answer from unit {unit} at {target} within {timeout_s:g} s "
                "(wrong unit id, device off, or wrong serial settings)"
            ) from None
        if response.isError():
            code = int(response.exception_code)
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ProbeError(
                f"unit {unit} answered Modbus exception {code}: {name} "
                f"(function {FUNCTION_OF_TABLE[table]}, address {address}, count {count})"
            )
        if table in ("coil", "discrete"):
            return [bool(b) for b in response.bits[:count]]
        return [int(r) for r in response.registers]
    finally:
        client.close()


def render_bits(bits: Sequence[bool], address: int) -> str:
    lines = ["address  bit"]
    lines += [f"{address + i:>7}  {int(b)}" for i, b in enumerate(bits)]
    return "\n".join(lines)


def render(registers: Sequence[int], address: int) -> str:
    """The registers raw, then every type in every order for each start address.

    For each starting register the table shows int16/uint16 (ABCD, BADC), the 32-bit types
    (int32, uint32, float32) and 64-bit types (int64, uint64, float64) in ABCD, CDAB, BADC and
    DCBA, as far as the block reaches, and the block as text.
    """
    lines = ["registers 寄存器 (raw):", "address      dec    hex    binary             chars"]
    for i, reg in enumerate(registers):
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in reg.to_bytes(2, "big"))
        lines.append(f"{address + i:>7}  {reg:>7}  0x{reg:04X}  {reg:016b}  {chars}")
    lines.append("")
    lines.append("decoded 解码 (value = raw; apply scale/offset yourself):")
    header = f"{'start':>7}  {'type':<8} {'ABCD':>22} {'CDAB':>22} {'BADC':>22} {'DCBA':>22}"
    lines.append(header)
    for start in range(len(registers)):
        rows = decode_all(registers[start:])
        by_type: dict[str, dict[str, str]] = {}
        for datatype, order, text in rows:
            if datatype == "string":
                continue
            by_type.setdefault(datatype, {})[order] = text
        for datatype, orders in by_type.items():
            cells = []
            for order in ("ABCD", "CDAB", "BADC", "DCBA"):
                value = orders.get(order)
                if value is None:  # 16-bit: word order does not apply
                    value = orders["ABCD" if order == "CDAB" else "BADC"]
                cells.append(f"{value:>22}")
            lines.append(f"{address + start:>7}  {datatype:<8} " + " ".join(cells))
    text_hi = registers_to_bytes(registers, "ABCD")
    text_lo = registers_to_bytes(registers, "BADC")
    lines.append("")
    lines.append(f"string ABCD (high byte first): {_printable(text_hi)!r}")
    lines.append(f"string BADC (low byte first):  {_printable(text_lo)!r}")
    return "\n".join(lines)


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)
