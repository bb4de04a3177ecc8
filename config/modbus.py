"""Modbus connection and register-address models."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from config.base import Frozen

ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]
"""Order of the bytes of a multi-register value, A = most significant byte.

ABCD: big-endian words, high word first (Modbus default). CDAB: low word first (word swap),
as many energy meters send float32. BADC: bytes swapped inside each word. DCBA: little-endian.
For 64-bit values the pattern extends (ABCD -> ABCDEFGH, CDAB -> GHEFCDAB, ...).
"""

Table = Literal["coil", "discrete", "holding", "input"]
"""Function codes 1 (coils), 2 (discrete inputs), 3 (holding registers), 4 (input registers)."""

FUNCTION_CODE_TABLE: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


class ModbusConnection(Frozen):
    """How the gateway reaches one Modbus device (a unit id on a TCP endpoint or serial line)."""

    transport: Literal["tcp", "rtu"] = "tcp"
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    serial_port: str | None = Field(default=None, description="e.g. /dev/ttyUSB0 for RTU")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(default=1, ge=0, le=247, description="default unit (slave) id of the points")
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=0, ge=0, le=5)
    poll_interval_ms: int = Field(default=1000, ge=10)
    max_gap: int = Field(
        default=8, ge=0, le=124, description="registers of gap allowed when coalescing reads"
    )
    max_registers: int = Field(default=125, ge=1, le=125)
    max_bits: int = Field(default=2000, ge=1, le=2000)
    rejoin_after_polls: int = Field(
        default=8,
        ge=1,
        description="after a refused combined read is split, polls until it is tried whole again",
    )
    rejoin_max_polls: int = Field(
        default=512,
        ge=1,
        description="cap of that wait (it doubles after each refused retry)",
    )
    client: Literal["lean", "pymodbus"] = Field(
        default="lean",
        description="Modbus TCP reads through the lean built-in client or through pymodbus "
        "(RTU always uses pymodbus); devices on one endpoint must agree",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConnection:
        if self.transport == "tcp" and not self.host:
            raise ValueError("a Modbus TCP device needs 'host'")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("a Modbus RTU device needs 'serial_port'")
        return self


class ModbusAddress(Frozen):
    """Where a point lives: table (or function code), register address, unit, order."""

    table: Table = "holding"
    address: int = Field(ge=0, le=65535, description="0-based register or bit address")
    unit: int | None = Field(default=None, ge=0, le=247, description="overrides the device unit")
    order: ByteOrder = "ABCD"
    length: int | None = Field(
        default=None, ge=1, le=125, description="registers of a string point"
    )
    bit: int | None = Field(
        default=None, ge=0, le=15, description="bit of a register read as a bool (0 = LSB)"
    )
